import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RecordedEvent } from '@factline/core';
import { getSqliteEventStore, getSqliteTransport, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';
import { orderEventsRelay, printServices, startOrderServices } from './services.ts';

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

test('inventory, payment and notification each handle each of their order events once, with its correlation id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  const services = await startOrderServices(transport, { pollMs: 50 });
  const projections = await startSqliteProjections(store, [orderSummaries, orderEventsRelay(transport)]);
  try {
    await runOrdersDemo(store, () => {});
    const events: RecordedEvent[] = [];
    for await (const event of store.readAll()) events.push(event);
    await services.waitUntilHandled(events, 5000);
    // Give a stray repeat the chance to show up before counting.
    await projections.waitFor('order_events_relay', await store.headPosition(), { timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 100));

    const expected = services.expected(events);
    assert.equal(expected.inventory.length, 3);
    assert.equal(expected.payment.length, 3);
    assert.equal(expected.notification.length, 5);
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const name of ['inventory', 'payment', 'notification'] as const) {
      const actions = services.actions[name];
      assert.deepEqual(actions.map((a) => a.eventId).sort(), [...expected[name]].sort(), `${name}: each event once`);
      for (const action of actions) {
        const event = byId.get(action.eventId);
        assert.equal(action.type, event?.type);
        assert.equal(action.correlationId, `checkout-${action.orderId}`);
        assert.equal(action.correlationId, event?.metadata.correlationId);
      }
      assert.equal(services.consumers[name].stats().deadLettered, 0);
    }
    assert.deepEqual(
      services.actions.notification.filter((a) => a.orderId === '1001').map((a) => a.type),
      ['OrderPlaced', 'OrderShipped'],
      'in stream order',
    );
    assert.deepEqual(Object.fromEntries(services.stock), { kettle: 9, mug: 20, tea: 10, lamp: 2 });
    const lines: string[] = [];
    printServices(services, (line) => lines.push(line));
    assert.ok(
      lines.some((l) => l.includes('order-1002') && l.includes('charged grace 40') && l.includes('checkout-1002')),
    );
  } finally {
    await projections.stop();
    await services.stop();
    await transport.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
