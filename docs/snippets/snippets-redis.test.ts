import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMessage } from '@factline/core';
import { createClient } from 'redis';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../../packages/redis/src/fixtures/server.ts';
import { redisBilling } from './redis.ts';
import { until } from './until.ts';

test('the Redis snippet runs: a published order is invoiced once', async (t) => {
  const skip = await redisUnavailable();
  if (skip) return t.skip(skip);
  const application = testApplication('snippet');
  const billing = await redisBilling(redisUrl, application);
  const client = createClient({ url: redisUrl });
  await client.connect();
  try {
    const order = createMessage({ type: 'OrderPlaced', key: 'o-1', data: { orderId: 'o-1', total: 30 } });
    await billing.transport.publish('orders', [order, order]);
    await until(() => billing.consumer.stats().handled === 1 && billing.consumer.stats().duplicates === 1, 10_000);
    assert.deepEqual(await client.hGetAll(`${application}:invoices`), { 'o-1': '30' });
  } finally {
    await billing.stop();
    await client.close();
    await removeKeys(application);
  }
});
