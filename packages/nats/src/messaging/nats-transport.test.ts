import { after } from 'node:test';
import type { Transport } from '@factline/core';
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
// Each case on a stream (application) of its own: nats-server 2.9.10 can drop messages not yet received from an
// interest-retention stream after a restart (docs/nats.md, fixtures/interest-restart-probe.ts), and on one stream
// shared by every case, the restart cases left a case after them waiting for a message the server had dropped.
const applications = new Map<Transport, string>();

after(async () => {
  if ('reason' in server) {
    if (!skip) await removeStreams([...applications.values()]);
  } else await server.stop();
});

testTransportConformance({
  name: privateUrl ? 'nats (private server)' : 'nats',
  skip,
  async createTransport({ onError }) {
    const application = testApplication('conf');
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    const transport = recordGroups(
      await getNatsTransport({ url: privateUrl ?? natsUrl, application, partitions: 1, ackWaitMs: 2000, onError }),
    );
    applications.set(transport, application);
    return transport;
  },
  diagnose: (transport) =>
    describeGroups(transport, {
      url: privateUrl ?? natsUrl,
      application: applications.get(transport) ?? '',
      partitions: 1,
    }),
  ...('reason' in server ? {} : backendHooks(server.stopServer, server.startServer)),
});
