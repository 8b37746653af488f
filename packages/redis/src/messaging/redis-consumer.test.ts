import { after } from 'node:test';
import { testConsumerConformance } from '@factline/core/testing';
import { createClient } from 'redis';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../fixtures/server.ts';
import { getRedisDeadLetterStore } from './redis-dead-letters.ts';
import { getRedisInbox } from './redis-inbox.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// The consumer pipeline on Redis alone: Redis Streams carry the messages, the Redis inbox keeps the marks,
// the transport's dead-letter store the dead letters. Effects are kept in a Redis list per consumer.
const skip = await redisUnavailable();
const application = testApplication('consumer');
const open = () => getRedisTransport({ url: redisUrl, application, partitions: 4, leaseMs: 3000 });

after(async () => {
  await removeKeys(application);
});

testConsumerConformance({
  name: 'redis transport, Redis inbox and dead letters',
  skip,
  async createEnvironment() {
    const transport: RedisTransport = await open();
    const inbox = await getRedisInbox({ url: redisUrl, application });
    const client = createClient({ url: redisUrl });
    client.on('error', () => undefined);
    await client.connect();
    const list = (consumer: string) => `${application}:effects:${consumer}`;
    return {
      transport,
      inbox,
      deadLetters: getRedisDeadLetterStore({ client: client as never, application }),
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
