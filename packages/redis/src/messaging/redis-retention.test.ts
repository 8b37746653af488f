import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const created: RedisTransport[] = [];
const { skip, application, client } = await sharedRedis('retention', async () => {
  for (const transport of created) await transport.close();
});

describe('redis: acknowledged entries do not stay', { skip }, () => {
  it('over 100,000 messages the streams stay bounded by what the slowest group has not read; idle consumers go', async () => {
    const partitions = 2;
    const open = async () => {
      const transport = await getRedisTransport({
        url: redisUrl,
        application,
        partitions,
        trimIntervalMs: 100,
        consumerIdleMs: 500,
        prefetch: 512,
      });
      created.push(transport);
      return transport;
    };
    const transport = await open();
    const lengths = async () => {
      let total = 0;
      for (let p = 0; p < partitions; p++)
        total += Number(await client.sendCommand(['XLEN', transport.keys.stream('orders', p)]));
      return total;
    };
    // A consumer name left behind by a process that went away without handing back (idle, nothing pending).
    await transport.declareSubscription('orders', 'billing');
    await client.sendCommand(['XGROUP', 'CREATECONSUMER', transport.keys.stream('orders', 0), 'billing', 'gone-1']);

    const subscription = transport.subscribe('orders', 'billing');
    const signal = new AbortController().signal;
    let handled = 0;
    let running = true;
    const consuming = (async () => {
      while (running) {
        const deliveries = await subscription.receive(256, 100, signal);
        await Promise.all(deliveries.map((d) => d.ack()));
        handled += deliveries.length;
      }
    })();

    try {
      const total = 100_000;
      const batch = 1000;
      const padding = 'x'.repeat(120);
      let longest = 0;
      for (let sent = 0; sent < total; sent += batch) {
        const messages = Array.from({ length: batch }, (_, i) =>
          createMessage({ type: 'OrderPlaced', key: `order-${(sent + i) % 500}`, data: { n: sent + i, padding } }),
        );
        await transport.publish('orders', messages);
        // The producer keeps at most 10,000 ahead of the consumer, as a steady flow would.
        await waitUntil(() => sent + batch - handled <= 10_000, 'the consumer to keep up', 60_000);
        longest = Math.max(longest, await lengths());
      }
      await waitUntil(() => handled >= total, 'every message handled', 120_000);
      await waitUntil(async () => (await lengths()) <= 2, 'the streams trimmed to what is unread', 10_000);
      assert.equal(handled, total);
      // 10,000 ahead at most, plus what one trim interval lets through.
      assert.ok(longest <= 20_000, `the streams held at most ${longest} entries while 100,000 went through`);
      await waitUntil(
        async () => {
          const consumers = await client.sendCommand([
            'XINFO',
            'CONSUMERS',
            transport.keys.stream('orders', 0),
            'billing',
          ]);
          return !JSON.stringify(consumers).includes('gone-1');
        },
        'the idle consumer name to be removed',
        10_000,
      );
    } finally {
      running = false;
      await consuming;
      await subscription.close();
    }
  });
});
