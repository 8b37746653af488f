import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Consumer, createConsumer, createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisInbox, type RedisInbox } from './redis-inbox.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// The process side of bounded memory: a consumer with the Redis inbox keeps nothing per message or per key once
// a message is settled (its mark lives in Redis). Every message has a key of its own, the worst case for
// per-key state; the heap after a full collection is compared between rounds.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let transport: RedisTransport | undefined;
let inbox: RedisInbox | undefined;
let consumer: Consumer | undefined;
const { skip, application } = await sharedRedis('memory', async () => {
  await consumer?.stop();
  await transport?.close();
  await inbox?.close();
});

describe('redis: the consumer process keeps nothing per settled message', { skip }, () => {
  it('over 8 rounds of 5,000 messages, each with a key of its own, the heap does not grow with the messages', async () => {
    transport = await getRedisTransport({ url: redisUrl, application, partitions: 4, prefetch: 512 });
    inbox = await getRedisInbox({ url: redisUrl, application });
    let handled = 0;
    consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox,
      concurrency: 16,
      handler() {
        handled += 1;
      },
    });
    await consumer.start();
    const round = 5000;
    const heaps: number[] = [];
    for (let r = 0; r < 8; r++) {
      const messages = Array.from({ length: round }, (_, i) =>
        createMessage({ type: 'Placed', key: `order-${r}-${i}`, data: { n: i, note: 'x'.repeat(100) } }),
      );
      for (let i = 0; i < round; i += 500) await transport.publish('orders', messages.slice(i, i + 500));
      await waitUntil(() => handled === (r + 1) * round, `round ${r} handled`, 30_000);
      // Settled: acked in Redis (the marks' acks ride with them), nothing left in delivery.
      await waitUntil(
        async () => (await (transport as RedisTransport).backlog?.('orders', 'billing'))?.messages === 0,
        `round ${r} settled`,
        10_000,
        10,
      );
      gc();
      gc();
      heaps.push(process.memoryUsage().heapUsed);
    }
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);
    // The first rounds warm up (code, connection buffers, pools); from the third on, 25,000 more messages.
    const growth = (heaps[7] as number) - (heaps[2] as number);
    assert.ok(
      growth < 2 * 1024 * 1024,
      `heap grew ${mb(growth)} MB over 25,000 messages (${heaps.map(mb).join(', ')} MB after each round)`,
    );
  });
});
