import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('delivery-counts');

/** The group's pending entries of `stream`: id, owner and times delivered (Redis's count). */
const pendingOf = async (stream: string, group: string) =>
  ((await client.sendCommand(['XPENDING', stream, group, '-', '+', '100'])) as [string, string, number, number][]).map(
    ([id, owner, , times]) => ({ id: String(id), owner: String(owner), times: Number(times) }),
  );

describe('redis: delivery counts', { skip }, () => {
  it("entries waiting in a reader past the straggler sweep's idle time keep their count; the next holder hands them out as read once", async () => {
    const topic = 'waiting';
    // Sweeps look for entries idle twice leaseMs (1.2 s), every 200 ms; four entries fill the reader.
    const open = () => getRedisTransport({ url: redisUrl, application, partitions: 1, leaseMs: 600, prefetch: 4 });
    const first = await open();
    const stream = first.keys.stream(topic, 0);
    const signal = new AbortController().signal;
    let second: Awaited<ReturnType<typeof open>> | undefined;
    try {
      const a = first.subscribe(topic, 'g');
      await waitUntil(() => first.heldPartitions(topic, 'g').length === 1, 'the first reader to hold the partition');
      // One key: while the first is in a handler's hands, the others wait in the reader.
      await first.publish(
        topic,
        [1, 2, 3, 4].map((n) => createMessage({ type: 'A', key: 'k', data: { n } })),
      );
      const [out] = await a.receive(1, 5000, signal);
      assert.ok(out, 'the first entry handed out');
      await waitUntil(async () => (await pendingOf(stream, 'g')).length === 4, 'the reader to read all four');
      // A straggler: read by a consumer that is not the holder (as a reader that read past its lease), after the four.
      await first.publish(topic, [createMessage({ type: 'A', key: 'straggler', data: { n: 5 } })]);
      const read = await client.sendCommand([
        'XREADGROUP',
        'GROUP',
        'g',
        'ghost',
        'COUNT',
        '1',
        'STREAMS',
        stream,
        '>',
      ]);
      assert.match(JSON.stringify(read), /straggler/, 'the reader, full, left the fifth entry unread');
      const [straggler] = (await pendingOf(stream, 'g')).filter((p) => p.owner === 'ghost');
      assert.ok(straggler);
      // The sweep that picks it up saw the four as well: they were read before it, idle longer.
      await waitUntil(
        async () => (await pendingOf(stream, 'g')).find((p) => p.id === straggler.id)?.owner !== 'ghost',
        'the sweep to claim the straggler',
        10_000,
      );
      const after = await pendingOf(stream, 'g');
      assert.deepEqual(
        after.map((p) => p.times),
        [1, 1, 1, 1, 2],
        'read once each; the straggler read, then claimed by the holder',
      );
      // Done with (its count is the claim's, as today): the next holder is given the three alone.
      await client.sendCommand(['XACK', stream, 'g', straggler.id]);
      await out.ack();
      await a.close();
      await first.close();
      // The next holder: the three never handed out run (a count each sweep had added would take them past
      // maxDeliveries, dead-lettered without a run).
      second = await open();
      const dead: string[] = [];
      const consumer = createConsumer({
        name: 'g',
        topic,
        transport: second,
        concurrency: 4,
        maxDeliveries: 2,
        handler: () => undefined,
        onError: (error, { stage }) => dead.push(`${stage}: ${String(error)}`),
      });
      await consumer.start();
      await waitUntil(
        () => consumer.stats().handled + consumer.stats().deadLettered >= 3,
        'the next holder to settle the three',
        10_000,
      );
      await consumer.stop();
      assert.deepEqual(
        { handled: consumer.stats().handled, deadLettered: consumer.stats().deadLettered },
        { handled: 3, deadLettered: 0 },
        dead.join('\n'),
      );
    } finally {
      await first.close();
      await second?.close();
    }
  });

  it('entries a reader read and never handed out reach the next holder after a hand-back as never run; one handed out keeps its count', async () => {
    const topic = 'handed-back';
    const open = () => getRedisTransport({ url: redisUrl, application, partitions: 1, prefetch: 8 });
    const first = await open();
    const stream = first.keys.stream(topic, 0);
    const signal = new AbortController().signal;
    let second: Awaited<ReturnType<typeof open>> | undefined;
    try {
      const a = first.subscribe(topic, 'g');
      await waitUntil(() => first.heldPartitions(topic, 'g').length === 1, 'the first reader to hold the partition');
      // One key: while its first message is out, the other three wait in the reader, read and never handed out.
      await first.publish(
        topic,
        [1, 2, 3, 4].map((n) => createMessage({ type: 'A', key: 'k', data: { n } })),
      );
      const [out] = await a.receive(1, 5000, signal);
      assert.ok(out, 'the first entry handed out');
      assert.equal((out.message.data as { n: number }).n, 1);
      await waitUntil(async () => (await pendingOf(stream, 'g')).length === 4, 'the reader to read all four');
      // Handed out once and given back unsettled (as a failed run's retry): it ran once.
      await out.release(0);
      await a.close();
      await first.close();
      assert.deepEqual(
        (await pendingOf(stream, 'g')).map((p) => p.owner),
        ['factline-returned', 'factline-returned', 'factline-returned', 'factline-returned'],
        'all four handed back',
      );
      second = await open();
      const runs: string[] = [];
      const dead: string[] = [];
      const consumer = createConsumer({
        name: 'g',
        topic,
        transport: second,
        maxDeliveries: 1,
        handler: (message) => {
          runs.push(String((message.data as { n: number }).n));
        },
        onError: (error, { stage }) => dead.push(`${stage}: ${String(error)}`),
      });
      await consumer.start();
      await waitUntil(
        () => consumer.stats().handled + consumer.stats().deadLettered >= 4,
        'the next holder to settle the four',
        10_000,
      );
      await consumer.stop();
      assert.deepEqual(runs, ['2', '3', '4'], 'the three never handed out run (first deliveries)');
      assert.deepEqual(
        { handled: consumer.stats().handled, deadLettered: consumer.stats().deadLettered },
        { handled: 3, deadLettered: 1 },
        `the one handed out before comes a second time, past maxDeliveries 1\n${dead.join('\n')}`,
      );
    } finally {
      await first.close();
      await second?.close();
    }
  });
});
