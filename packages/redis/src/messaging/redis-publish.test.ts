import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
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

  it('what a producer publishes after the server lost its data reaches a group declared afterwards', async () => {
    const producer = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    const topic = 'lost';
    const streams = [0, 1].map((p) => producer.keys.stream(topic, p));
    let consumer: Awaited<ReturnType<typeof getRedisTransport>> | undefined;
    try {
      await producer.declareSubscription(topic, 'billing');
      await producer.publish(topic, [createMessage({ type: 'T', key: 'a', data: { n: 0 } })]);
      // What a restart without persistence leaves: none of the topic's keys.
      await client.sendCommand(['DEL', producer.keys.groups(topic), ...streams]);
      await client.sendCommand(['HDEL', producer.keys.partitions, topic]);
      // The producer had seen the group: it publishes on (an outbox relay, asking for a subscription).
      const after = [1, 2, 3].map((n) => createMessage({ type: 'T', key: `k${n}`, data: { n } }));
      await producer.publish(topic, after, { requireSubscription: true });
      // The consumer's process starts after the restart: its group is declared on streams that hold those.
      consumer = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
      const subscription = consumer.subscribe(topic, 'billing');
      const received: number[] = [];
      await waitUntil(async () => {
        for (const delivery of await subscription.receive(10, 100, new AbortController().signal)) {
          received.push((delivery.message.data as { n: number }).n);
          await delivery.ack();
        }
        return received.length >= 3;
      }, 'the messages published after the loss');
      assert.deepEqual(received.sort(), [1, 2, 3]);
      // A group declared later, once the topic's count is recorded again, starts from then on as ever.
      await consumer.declareSubscription(topic, 'audit');
      assert.equal((await consumer.backlog?.(topic, 'audit'))?.messages, 0);
      await subscription.close();
    } finally {
      await consumer?.close();
      await producer.close();
    }
  });

  it('a group declared first after the partition count was removed (a repartition) starts from then on', async () => {
    const topic = 'repartition';
    const before = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      await before.declareSubscription(topic, 'billing');
      await before.publish(
        topic,
        [1, 2, 3].map((n) => createMessage({ type: 'T', key: `k${n}`, data: { n } })),
      );
    } finally {
      await before.close();
    }
    // The documented step between stopping every process and starting them with another count.
    await client.sendCommand(['HDEL', before.keys.partitions, topic]);
    const after = await getRedisTransport({ url: redisUrl, application, partitions: 3 });
    try {
      // A new group is the first declaration after the change: the streams' entries are billing's, not its.
      await after.declareSubscription(topic, 'audit');
      assert.equal((await after.backlog?.(topic, 'audit'))?.messages, 0);
      await after.declareSubscription(topic, 'billing');
      assert.equal((await after.backlog?.(topic, 'billing'))?.messages, 3, 'billing keeps its unread entries');
    } finally {
      await after.close();
    }
  });
});
