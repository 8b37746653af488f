import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMessage } from '@factline/core';
import { openSqliteDatabase } from '@factline/sqlite';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../../packages/nats/src/fixtures/server.ts';
import { natsBilling } from './nats.ts';
import { until } from './until.ts';

test('the NATS snippet runs: an order published twice (a relay retry) is stored once and invoiced once', async (t) => {
  const skip = await natsUnavailable();
  if (skip) return t.skip(skip);
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippet-nats-'));
  const db = openSqliteDatabase(join(dir, 'billing.db'));
  const application = testApplication('snippet');
  const { transport, consumer } = await natsBilling(natsUrl, application, db);
  try {
    const order = createMessage({ type: 'OrderPlaced', key: 'o-1', data: { orderId: 'o-1', total: 30 } });
    await transport.publish('orders', [order]);
    await transport.publish('orders', [order]);
    const invoices = db.prepare<[], { order_id: string; total: number }>('SELECT * FROM invoices');
    await until(() => invoices.all().length === 1 && consumer.stats().handled === 1, 10_000);
    assert.deepEqual(invoices.all(), [{ order_id: 'o-1', total: 30 }]);
    assert.equal(consumer.stats().duplicates, 0, 'the server stored the second publish of the same id not at all');
  } finally {
    await consumer.stop();
    await transport.close();
    await removeStreams([application]);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
