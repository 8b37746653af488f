import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { getSqliteEventStore, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';

test('the orders example places, pays, ships and cancels orders on a SQLite file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const lines: string[] = [];
  const result = await runOrdersDemo(store, (line) => lines.push(line));
  await store.close();
  rmSync(dir, { recursive: true, force: true });

  assert.deepEqual(
    Object.fromEntries(Object.entries(result.orders).map(([id, s]) => [id, [s.status, s.total, s.itemCount]])),
    { '1001': ['shipped', 30, 1], '1002': ['paid', 40, 2], '1003': ['cancelled', 45, 1] },
  );
  assert.equal(result.refused.length, 2);
  assert.deepEqual(
    result.log.map((e) => `${e.streamId}@${e.version}:${e.type}`),
    [
      'order-1001@1:OrderPlaced',
      'order-1001@2:OrderPaid',
      'order-1001@3:OrderShipped',
      'order-1002@1:OrderPlaced',
      'order-1002@2:OrderPaid',
      'order-1003@1:OrderPlaced',
      'order-1003@2:OrderCancelled',
    ],
  );
  assert.ok(lines.some((l) => l.includes('order-1002') && l.includes('paid')));
});

test('order_summaries follows the orders through an async projection, and a rebuild gives the same rows', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const projections = await startSqliteProjections(store, [orderSummaries]);
  try {
    await runOrdersDemo(store, () => {});
    await projections.waitFor('order_summaries', await store.headPosition(), { timeoutMs: 5000 });
    const live = readOrderSummaries(store.database);
    assert.deepEqual(
      live.map((r) => [r.order_id, r.customer_id, r.status, r.total, r.item_count]),
      [
        ['1001', 'ada', 'shipped', 30, 1],
        ['1002', 'grace', 'paid', 40, 2],
        ['1003', 'alan', 'cancelled', 45, 1],
      ],
    );
    await projections.rebuild('order_summaries');
    assert.deepEqual(readOrderSummaries(store.database), live);
    assert.equal(projections.status('order_summaries').lag, 0);
  } finally {
    await projections.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
