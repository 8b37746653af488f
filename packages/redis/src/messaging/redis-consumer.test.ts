import { after } from 'node:test';
import { backendHooks, testConsumerConformance } from '@factline/core/testing';
import { createClient } from 'redis';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../fixtures/server.ts';
import { getRedisDeadLetterStore } from './redis-dead-letters.ts';
import { getRedisInbox } from './redis-inbox.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// The consumer pipeline on Redis alone: Redis Streams carry the messages, the Redis inbox keeps the marks,
// the transport's dead-letter store the dead letters. Effects are kept in a Redis list per consumer. On a
// private server with an append-only file when one can start (the restart case restarts it), else the shared one.
const server = await startPrivateServer({ appendOnly: true });
const url = 'reason' in server ? redisUrl : server.url;
const skip = 'reason' in server ? await redisUnavailable() : false;
const application = testApplication('consumer');
const open = () => getRedisTransport({ url, application, partitions: 4, leaseMs: 3000, reconnectMaxMs: 500 });

after(async () => {
  if ('reason' in server) await removeKeys(application);
  else await server.stop();
});

testConsumerConformance({
  name: 'redis transport, Redis inbox and dead letters',
  skip,
  ...('reason' in server ? {} : backendHooks(server.stopServer, server.startServer)),
  async createEnvironment() {
    const transport: RedisTransport = await open();
    const inbox = await getRedisInbox({ url, application });
    const client = createClient({ url });
    client.on('error', () => undefined);
    await client.connect();
    const list = (consumer: string) => `${application}:effects:${consumer}`;
    return {
      transport,
      inbox,
      deadLetters: getRedisDeadLetterStore({ client, application }),
      async writeEffect(_tx, consumer, value) {
        await client.sendCommand(['RPUSH', list(consumer), value]);
      },
      effects: async (consumer) => (await client.sendCommand(['LRANGE', list(consumer), '0', '-1'])) as string[],
      peerTransport: open,
      close: async () => {
        await transport.close();
        await inbox.close();
        await client.close();
      },
    };
  },
});
