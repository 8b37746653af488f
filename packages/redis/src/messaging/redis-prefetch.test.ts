import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('prefetch');

/** Entries of `group` read from the topic's streams and not acknowledged yet (what a reader holds). */
async function pending(topic: string, group: string, partitions: number): Promise<number> {
  let count = 0;
  for (let p = 0; p < partitions; p++) {
    const summary = (await client.sendCommand(['XPENDING', `${application}:stream:${topic}:${p}`, group])) as unknown[];
    count += Number(summary[0]);
  }
  return count;
}

describe('redis: prefetch', { skip }, () => {
  for (const prefetch of [8, 3]) {
    it(`a process holds at most prefetch (${prefetch}) entries of a group in all, over 4 partitions full of messages`, async () => {
      const transport = await getRedisTransport({ url: redisUrl, application, partitions: 4, prefetch });
      const topic = `orders-${prefetch}`;
      try {
        await transport.declareSubscription(topic, 'billing');
        await transport.publish(
          topic,
          Array.from({ length: 200 }, (_, i) => createMessage({ type: 'OrderPlaced', key: `o-${i}`, data: {} })),
        );
        const subscription = transport.subscribe(topic, 'billing');
        const signal = new AbortController().signal;
        // Each read is accepted before the receive that waited for it resolves; a full buffer reads no more.
        const first = await subscription.receive(1, 5000, signal);
        assert.equal(first.length, 1);
        assert.equal(await pending(topic, 'billing', 4), prefetch, 'read from the streams: the prefetch, not more');
        let received = first.length;
        for (let round = 0; round < 5; round++) {
          const got = await subscription.receive(100, 5000, signal);
          await Promise.all(got.map((d) => d.ack()));
          received += got.length;
          assert.ok(
            (await pending(topic, 'billing', 4)) <= prefetch + 1,
            'never more than the prefetch (+ the first, unacked)',
          );
        }
        assert.ok(received > prefetch, 'reading went on as acks made room');
        await Promise.all(first.map((d) => d.ack()));
        await subscription.close();
      } finally {
        await transport.close();
      }
    });
  }
});
