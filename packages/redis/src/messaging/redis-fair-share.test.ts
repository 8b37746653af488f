import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Consumer, createConsumer, createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { partitionOf } from '../keys.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// A reader above its fair share drains a partition (hands nothing of it out) until nothing of it is in a handler's
// hands. A consumer waiting for a delayed retry (`onDelayedRetry: 'wait'`) keeps its delivery in hands for the whole
// delay: a drain waiting for it held every other key of the partition back, and the joining reader got nothing.
const { skip, application } = await sharedRedis('fair-share');

const leaseMs = 600;
/** Far longer than any wait below: a drain that waits for this retry fails the test. */
const longRetryMs = 20_000;
/**
 * How long a key of a partition being given up may wait: one drain's wait for its deliveries (twice leaseMs) and a
 * round, with room for a slow machine; far below the long retry, and below two drains one after the other.
 */
const boundMs = 2500;

const keysOf = (partition: number, count: number, prefix: string) => {
  const found: string[] = [];
  for (let i = 0; found.length < count; i++)
    if (partitionOf(`${prefix}-${i}`, 2) === partition) found.push(`${prefix}-${i}`);
  return found;
};

/**
 * Two transports of one application (two processes' readers), consumers of `topic` on each: every key of `failing`
 * fails once, then waits for its retry (its delay from `failing`); the times each message was handled are recorded.
 */
async function setUp(topic: string, failing: Record<string, number>) {
  const opened: RedisTransport[] = [];
  const consumers: Consumer[] = [];
  const failed = new Set<string>();
  const handledAt = new Map<string, number>();
  const open = async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2, leaseMs });
    opened.push(transport);
    const consumer = createConsumer({
      name: 'g',
      topic,
      transport,
      retryPolicy: (_error, _attempt, message) => ({ action: 'retry', delayMs: failing[message.key] ?? 0 }),
      handler: (message) => {
        if (message.key in failing && !failed.has(message.key)) {
          failed.add(message.key);
          throw new Error('fails once');
        }
        handledAt.set(message.id, Date.now());
      },
    });
    consumers.push(consumer);
    await consumer.start();
    return transport;
  };
  let closing = false;
  const publishing: Promise<unknown>[] = [];
  /** Publishes a message to each of `keys` every 100 ms while `going()`, recording when; resolves their send times. */
  const publishWhile = (transport: RedisTransport, keys: string[], going: () => boolean) => {
    const sending = (async () => {
      const sentAt = new Map<string, number>();
      for (let round = 0; going() && !closing && round < 100; round++) {
        const batch = keys.map((key) => createMessage({ type: 'Other', key, data: { round } }));
        const at = Date.now();
        await transport.publish(topic, batch);
        for (const message of batch) sentAt.set(message.id, at);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return sentAt;
    })();
    publishing.push(sending);
    return sending;
  };
  /** Waits until every message sent is handled, within `boundMs` of the last send; the longest wait of one. */
  const longestWait = async (sentAt: Map<string, number>) => {
    await waitUntil(
      () => [...sentAt.keys()].every((id) => handledAt.has(id)),
      `every other key's message handled (${[...sentAt.keys()].filter((id) => !handledAt.has(id)).length} of ${sentAt.size} were not)`,
      boundMs,
    );
    return Math.max(...[...sentAt].map(([id, at]) => (handledAt.get(id) as number) - at));
  };
  const close = async () => {
    // A failed assertion leaves a publishing loop running: ended before the transports close.
    closing = true;
    await Promise.allSettled(publishing);
    await Promise.allSettled(consumers.map((consumer) => consumer.stop()));
    await Promise.allSettled(opened.map((transport) => transport.close()));
  };
  return { open, failed, publishWhile, longestWait, close };
}

describe('redis: a partition given up for a fair share while a key waits for a delayed retry', { skip }, () => {
  it('the one with nothing in hands is given up: the waiting key holds none of its partition back, the joining reader gets its share', async () => {
    const topic = 'share-idle';
    // In partition 0: the first a reader held, the one it gave up before.
    const [stuck, ...others] = keysOf(0, 3, 'idle') as [string, ...string[]];
    const setup = await setUp(topic, { [stuck]: longRetryMs });
    try {
      const first = await setup.open();
      await waitUntil(() => first.heldPartitions(topic, 'g').length === 2, 'the first reader to hold both', 5000);
      await first.publish(topic, [createMessage({ type: 'Stuck', key: stuck, data: {} })]);
      await waitUntil(() => setup.failed.has(stuck), 'the stuck key to fail and wait for its retry', 5000);

      const second = await setup.open();
      const shared = () =>
        second.heldPartitions(topic, 'g').length === 1 && first.heldPartitions(topic, 'g').length === 1;
      const sending = setup.publishWhile(first, others, () => !shared());
      await waitUntil(shared, 'one partition each', 5000);
      assert.deepEqual(first.heldPartitions(topic, 'g'), [0], 'the partition with a delivery in hands stays');
      const sentAt = await sending;
      const longest = await setup.longestWait(sentAt);
      assert.ok(longest < boundMs, `the other keys of the stuck key's partition waited ${longest} ms`);
    } finally {
      await setup.close();
    }
  });

  it('with a delayed retry in hands in every partition, a drain holds the keys back at most twice leaseMs; the partition goes once its retry is over', async () => {
    const topic = 'share-busy';
    const [stuck0, ...others0] = keysOf(0, 3, 'busy') as [string, ...string[]];
    const [stuck1, ...others1] = keysOf(1, 3, 'busy') as [string, ...string[]];
    // Partition 1's retry ends within the test, partition 0's long after it.
    const shortRetryMs = 3000;
    const setup = await setUp(topic, { [stuck0]: longRetryMs, [stuck1]: shortRetryMs });
    try {
      const first = await setup.open();
      await waitUntil(() => first.heldPartitions(topic, 'g').length === 2, 'the first reader to hold both', 5000);
      await first.publish(topic, [
        createMessage({ type: 'Stuck', key: stuck0, data: {} }),
        createMessage({ type: 'Stuck', key: stuck1, data: {} }),
      ]);
      await waitUntil(
        () => setup.failed.has(stuck0) && setup.failed.has(stuck1),
        'both stuck keys to fail and wait for their retries',
        5000,
      );
      const retriesFrom = Date.now();

      const second = await setup.open();
      // Through both partitions' drains (twice leaseMs each) and past them.
      const sentAt = await setup.publishWhile(first, [...others0, ...others1], () => Date.now() - retriesFrom < 3500);
      const longest = await setup.longestWait(sentAt);
      assert.ok(longest < boundMs, `other keys waited ${longest} ms while their partitions drained`);

      // Partition 1 goes once its key's retry is over; partition 0 stays with its delivery in hands.
      await waitUntil(
        () => second.heldPartitions(topic, 'g').length === 1,
        'the joining reader to get its share',
        shortRetryMs + 5000,
      );
      assert.deepEqual(second.heldPartitions(topic, 'g'), [1]);
      assert.deepEqual(first.heldPartitions(topic, 'g'), [0]);
    } finally {
      await setup.close();
    }
  });
});
