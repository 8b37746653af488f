import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage, isFactlineError } from '@factline/core';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

// Every process of an application must give the same `partitions`: a key's partition is its hash modulo the
// count, so two counts send one key to two partitions (two readers, no order). The first declaration of a topic
// records its count; a transport given another is refused on declaring, subscribing and publishing.
const { skip, application, client } = await sharedRedis('partitions');

const otherCount = (recorded: number, given: number) => (error: Error & { retryable?: boolean }) => {
  assert.ok(isFactlineError(error), String(error));
  assert.equal(error.retryable, false, error.message);
  assert.match(
    error.message,
    new RegExp(
      `^topic 'orders' has ${recorded} partitions in the Redis application '${application}' \\(${application}:partitions\\), and this transport was given partitions: ${given}: every process of an application must use the same count`,
    ),
  );
  return true;
};

describe('redis: one partition count per topic', { skip }, () => {
  it('records the count at the first declaration; another count is refused for declaring, consuming and publishing, and writes nothing', async () => {
    const four = await getRedisTransport({ url: redisUrl, application, partitions: 4 });
    const eight = await getRedisTransport({ url: redisUrl, application, partitions: 8 });
    const alsoFour = await getRedisTransport({ url: redisUrl, application, partitions: 4 });
    try {
      await four.declareSubscription('orders', 'billing');
      assert.equal(await client.sendCommand(['HGET', `${application}:partitions`, 'orders']), '4');

      await assert.rejects(eight.declareSubscription('orders', 'shipping'), otherCount(4, 8));
      await assert.rejects(
        eight.declareSubscription('orders', 'shipping'),
        otherCount(4, 8),
        'refused again, not cached',
      );
      await assert.rejects(
        eight.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]),
        otherCount(4, 8),
      );
      const consumer = createConsumer({
        name: 'shipping',
        topic: 'orders',
        transport: eight,
        handler: () => undefined,
      });
      await assert.rejects(consumer.start(), otherCount(4, 8));
      await consumer.stop();
      assert.equal(
        Number(await client.sendCommand(['EXISTS', `${application}:stream:orders:4`])),
        0,
        'no fifth stream',
      );
      assert.deepEqual(await client.sendCommand(['SMEMBERS', `${application}:groups:orders`]), ['billing']);
      assert.equal(await client.sendCommand(['HGET', `${application}:partitions`, 'orders']), '4');

      // The same count is welcome, and the count is per topic.
      await alsoFour.declareSubscription('orders', 'shipping');
      await alsoFour.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]);
      await eight.declareSubscription('payments', 'ledger');
      assert.equal(await client.sendCommand(['HGET', `${application}:partitions`, 'payments']), '8');
    } finally {
      await Promise.all([four.close(), eight.close(), alsoFour.close()]);
    }
  });
});
