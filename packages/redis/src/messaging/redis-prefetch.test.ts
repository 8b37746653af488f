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

  it('a new holder takes over pending entries far beyond prefetch only as it has room, in order per key, before the new ones', async () => {
    const prefetch = 10;
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1, prefetch });
    const topic = 'taken-over';
    const stream = `${application}:stream:${topic}:0`;
    const keys = ['a', 'b', 'c'];
    const message = (i: number) =>
      createMessage({ type: 'OrderPlaced', key: keys[i % keys.length] as string, data: { i } });
    /** Entries pending under the group's consumers other than the dead reader: what the transport's reader holds. */
    const held = async () => {
      const [, , , consumers] = (await client.sendCommand(['XPENDING', stream, 'billing'])) as [
        unknown,
        unknown,
        unknown,
        [string, string][] | null,
      ];
      return (consumers ?? []).reduce((sum, [name, n]) => (String(name) === 'ghost' ? sum : sum + Number(n)), 0);
    };
    try {
      await transport.declareSubscription(topic, 'billing');
      const pendingCount = 1500;
      await transport.publish(
        topic,
        Array.from({ length: pendingCount }, (_, i) => message(i)),
      );
      // Read by a reader that died: pending under its name, for the next holder to take over.
      await client.sendCommand([
        'XREADGROUP',
        'GROUP',
        'billing',
        'ghost',
        'COUNT',
        String(pendingCount),
        'STREAMS',
        stream,
        '>',
      ]);
      // Published after: read only once the pending ones are all taken.
      const total = pendingCount + 30;
      await transport.publish(
        topic,
        Array.from({ length: total - pendingCount }, (_, i) => message(pendingCount + i)),
      );
      const subscription = transport.subscribe(topic, 'billing');
      const signal = new AbortController().signal;
      const seen = new Map<string, number[]>();
      let received = 0;
      let most = 0;
      while (received < total) {
        const got = await subscription.receive(4, 5000, signal);
        assert.ok(got.length > 0, `a delivery within 5 s (${received} of ${total} so far)`);
        // Taken with deliveries in hand and their acks not made: what is out counts too.
        most = Math.max(most, await held());
        for (const delivery of got) {
          const list = seen.get(delivery.message.key) ?? [];
          list.push((delivery.message.data as { i: number }).i);
          seen.set(delivery.message.key, list);
        }
        received += got.length;
        await Promise.all(got.map((d) => d.ack()));
      }
      assert.ok(most <= prefetch, `held at most the prefetch (${prefetch}), not ${most}`);
      for (const [k, key] of keys.entries()) {
        const expected = Array.from({ length: total }, (_, i) => i).filter((i) => i % keys.length === k);
        assert.deepEqual(seen.get(key), expected, `key ${key}: each once, in order, the taken-over ones first`);
      }
      await subscription.close();
    } finally {
      await transport.close();
    }
  });
});
