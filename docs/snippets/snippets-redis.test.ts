import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { createClient } from 'redis';
import { type PrivateServer, startPrivateServer } from '../../packages/redis/src/fixtures/private-server.ts';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../../packages/redis/src/fixtures/server.ts';
import { redisBilling, redisOverTls } from './redis.ts';
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

test('the Redis TLS snippet runs: over rediss:// with a CA and a client certificate, a message is handled', async (t) => {
  const started = await startPrivateServer({ tls: 'verify-clients' });
  if ('reason' in started) return t.skip(started.reason);
  const server: PrivateServer = started;
  const application = testApplication('snippet-tls');
  const { dir } = server;
  const { transport, inbox } = await redisOverTls(server.url, application, {
    ca: `${dir}/ca.pem`,
    cert: `${dir}/client.pem`,
    key: `${dir}/client.key`,
  });
  let handled = 0;
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox,
    handler: () => {
      handled += 1;
    },
  });
  try {
    await consumer.start();
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'o-1', data: {} })]);
    await until(() => handled === 1, 10_000);
  } finally {
    await consumer.stop();
    await transport.close();
    await inbox.close();
    await server.stop();
  }
});
