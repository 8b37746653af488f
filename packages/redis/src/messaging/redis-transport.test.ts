import { after } from 'node:test';
import { backendHooks, testTransportConformance } from '@factline/core/testing';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../fixtures/server.ts';
import { getRedisTransport } from './redis-transport.ts';

// The suite runs once: on a private server with an append-only file when this machine can start one (its
// restart cases stop and start that server; the file keeps the messages), else on the shared server with
// the restart cases skipped.
const server = await startPrivateServer({ appendOnly: true });
const privateUrl = 'reason' in server ? undefined : server.url;
if ('reason' in server) console.log(`# no private redis-server (${server.reason}): the restart cases skip`);
const skip = privateUrl ? false : await redisUnavailable();
const application = testApplication('conf');

after(async () => {
  if ('reason' in server) await removeKeys(application);
  else await server.stop();
});

testTransportConformance({
  name: privateUrl ? 'redis (private server, append-only file)' : 'redis',
  skip,
  async createTransport({ onError }) {
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    return getRedisTransport({ url: privateUrl ?? redisUrl, application, partitions: 1, reconnectMaxMs: 500, onError });
  },
  ...('reason' in server ? {} : backendHooks(server.stopServer, server.startServer)),
});
