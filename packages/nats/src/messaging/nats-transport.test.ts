import { after } from 'node:test';
import { backendHooks, testTransportConformance } from '@factline/core/testing';
import { describeGroups, recordGroups } from '../fixtures/diagnose.ts';
import { showLogOnFailure, startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport } from './nats-transport.ts';

// The transport suite runs once: on a private server when this machine can start one (its restart cases
// stop and start that server), else on the shared server with the restart cases skipped.
const server = await startPrivateServer({ jetstream: true });
showLogOnFailure(server);

const privateUrl = 'reason' in server ? undefined : server.url;
if ('reason' in server) console.log(`# no private nats-server (${server.reason}): the restart cases skip`);
const skip = privateUrl ? false : await natsUnavailable();
const application = testApplication('conf');

after(async () => {
  if ('reason' in server) {
    if (!skip) await removeStreams([application]);
  } else await server.stop();
});

testTransportConformance({
  name: privateUrl ? 'nats (private server)' : 'nats',
  skip,
  async createTransport({ onError }) {
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    return recordGroups(
      await getNatsTransport({ url: privateUrl ?? natsUrl, application, partitions: 1, ackWaitMs: 2000, onError }),
    );
  },
  diagnose: (transport) => describeGroups(transport, { url: privateUrl ?? natsUrl, application, partitions: 1 }),
  ...('reason' in server ? {} : backendHooks(server.stopServer, server.startServer)),
});
