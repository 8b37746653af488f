import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMessage } from '@factline/core';
import { openSqliteDatabase } from '@factline/sqlite';
import {
  amqpUrl,
  rabbitUnavailable,
  removeTopology,
  testApplication,
} from '../../packages/rabbitmq/src/fixtures/server.ts';
import { rabbitBilling } from './rabbitmq.ts';
import { until } from './until.ts';

test('the RabbitMQ snippet runs: a published order is invoiced once', async (t) => {
  const skip = await rabbitUnavailable();
  if (skip) return t.skip(skip);
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippet-rabbit-'));
  const db = openSqliteDatabase(join(dir, 'billing.db'));
  const { transport, consumer } = await rabbitBilling(amqpUrl, testApplication('snippet'), db);
  try {
    const order = createMessage({ type: 'OrderPlaced', key: 'o-1', data: { orderId: 'o-1', total: 30 } });
    await transport.publish('orders', [order, order]);
    const invoices = db.prepare<[], { order_id: string; total: number }>('SELECT * FROM invoices');
    await until(() => invoices.all().length === 1 && consumer.stats().duplicates === 1, 10_000);
    assert.deepEqual(invoices.all(), [{ order_id: 'o-1', total: 30 }]);
  } finally {
    await consumer.stop();
    await transport.close();
    await removeTopology([transport]);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
