import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('publish');

/** What a partition stream holds, in stream order: each entry's key and `data.n`. */
async function streamOf(stream: string): Promise<{ key: string; n: number }[]> {
  const entries = (await client.sendCommand(['XRANGE', stream, '-', '+'])) as [string, string[]][];
  return entries.map(([, fields]) => {
    const message = JSON.parse(String(fields[fields.indexOf('m') + 1])) as { key: string; data: { n: number } };
    return { key: message.key, n: message.data.n };
  });
}

describe('redis: publish', { skip }, () => {
  it('a publish larger than one append call lands whole, each key in publish order; a key after a delayed message waits with it', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      await transport.declareSubscription('orders', 'billing');
      // 1,300 small messages (over 500 per call) and 3 of 600 kB (over 1 MB per call), on 5 keys.
      const big = 'x'.repeat(600_000);
      const messages = Array.from({ length: 1303 }, (_, n) =>
        createMessage({
          type: 'OrderPlaced',
          key: `k-${n % 5}`,
          data: n >= 1300 ? { n, big } : { n },
          ...(n === 700 ? { deliverAt: new Date(Date.now() + 60_000) } : {}),
        }),
      );
      await transport.publish('orders', messages);
      const streams = await Promise.all([0, 1].map((p) => streamOf(transport.keys.stream('orders', p))));
      const delayed = Number(await client.sendCommand(['ZCARD', transport.keys.delayed]));
      // Message 700 (key k-0) is due later: k-0's later messages are delayed with it.
      const held = messages.filter((m, n) => n >= 700 && m.key === 'k-0').length;
      assert.equal(delayed, held);
      assert.equal(streams.flat().length, messages.length - held, 'every other message once');
      for (const key of ['k-0', 'k-1', 'k-2', 'k-3', 'k-4']) {
        const order = streams.flatMap((entries) => entries.filter((e) => e.key === key).map((e) => e.n));
        const published = messages.flatMap((m, n) => (m.key === key && !(key === 'k-0' && n >= 700) ? [n] : []));
        assert.deepEqual(order, published, `${key} in publish order`);
      }
    } finally {
      await transport.close();
    }
  });
});
