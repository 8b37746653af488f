import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { messageFromEvent, type RecordedEvent } from '@factline/core';
import { getSqliteEventStore, getSqliteTransport, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';
import { orderSchemas } from './schemas.ts';
import {
  orderEventsRelay,
  orderEventsTopic,
  printServices,
  readServiceActions,
  readStock,
  startOrderServices,
} from './services.ts';

test('the orders example places, pays, ships and cancels orders on a SQLite file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db'), schemas: orderSchemas });
  const lines: string[] = [];
  const result = await runOrdersDemo(store, (line) => lines.push(line));
  await store.close();
  rmSync(dir, { recursive: true, force: true });

  assert.deepEqual(
    Object.fromEntries(
      Object.entries(result.orders).map(([id, s]) => [id, [s.status, s.total, s.currency, s.itemCount]]),
    ),
    { '1001': ['shipped', 30, 'EUR', 1], '1002': ['paid', 40, 'GBP', 2], '1003': ['cancelled', 45, 'EUR', 1] },
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
  const store = getSqliteEventStore({ path: join(dir, 'orders.db'), schemas: orderSchemas });
  const projections = await startSqliteProjections(store, [orderSummaries]);
  try {
    await runOrdersDemo(store, () => {});
    await projections.waitFor('order_summaries', await store.headPosition(), { timeoutMs: 5000 });
    const live = readOrderSummaries(store.database);
    assert.deepEqual(
      live.map((r) => [r.order_id, r.customer_id, r.status, r.total, r.currency, r.item_count]),
      [
        ['1001', 'ada', 'shipped', 30, 'EUR', 1],
        ['1002', 'grace', 'paid', 40, 'GBP', 2],
        ['1003', 'alan', 'cancelled', 45, 'EUR', 1],
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
  const store = getSqliteEventStore({ path: join(dir, 'orders.db'), schemas: orderSchemas });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  const services = await startOrderServices(transport, store.database, { pollMs: 50 });
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
    const actionsOf = services.actions();
    assert.equal(expected.inventory.length, 3);
    assert.equal(expected.payment.length, 3);
    assert.equal(expected.notification.length, 5);
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const name of ['inventory', 'payment', 'notification'] as const) {
      const actions = actionsOf[name];
      assert.deepEqual(actions.map((a) => a.eventId).sort(), [...expected[name]].sort(), `${name}: each event once`);
      for (const action of actions) {
        const event = byId.get(action.eventId);
        assert.equal(action.type, event?.type);
        assert.equal(action.correlationId, `checkout-${action.orderId}`);
        assert.equal(action.correlationId, event?.metadata.correlationId);
      }
      assert.equal(services.consumers[name].stats().deadLettered, 0);
      assert.deepEqual(await services.consumers[name].deadLetters.list(), []);
    }
    assert.deepEqual(
      actionsOf.notification.filter((a) => a.orderId === '1001').map((a) => a.type),
      ['OrderPlaced', 'OrderShipped'],
      'in stream order',
    );
    assert.deepEqual(Object.fromEntries(services.stock()), { kettle: 9, mug: 20, tea: 10, lamp: 2 });
    const lines: string[] = [];
    printServices(services, (line) => lines.push(line));
    assert.ok(
      lines.some((l) => l.includes('order-1002') && l.includes('charged grace 40 GBP') && l.includes('checkout-1002')),
    );
  } finally {
    await projections.stop();
    await services.stop();
    await transport.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the services apply each message once across a restart, and their state survives reopening the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-'));
  const path = join(dir, 'orders.db');
  const stopAll: (() => Promise<void>)[] = [];
  const shutdown = async () => {
    for (const step of stopAll.splice(0).reverse()) await step();
  };
  try {
    // First run: the whole demo, every event handled.
    let store = getSqliteEventStore({ path, schemas: orderSchemas });
    let transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
    stopAll.push(
      () => store.close(),
      () => transport.close(),
    );
    let services = await startOrderServices(transport, store.database, { pollMs: 50 });
    stopAll.push(() => services.stop());
    const projections = await startSqliteProjections(store, [orderEventsRelay(transport)]);
    stopAll.push(() => projections.stop());
    await runOrdersDemo(store, () => {});
    const events: RecordedEvent[] = [];
    for await (const event of store.readAll()) events.push(event);
    await services.waitUntilHandled(events, 5000);
    await projections.waitFor('order_events_relay', await store.headPosition(), { timeoutMs: 5000 });
    const actions = services.actions();
    const stock = services.stock();
    assert.deepEqual(Object.fromEntries(stock), { kettle: 9, mug: 20, tea: 10, lamp: 2 });

    // Stop everything, then hand the services an OrderPlaced they already applied once more:
    // published again, so each of the three groups gets a copy, waiting in the file.
    const placed = events.find((e) => e.type === 'OrderPlaced' && e.streamId === 'order-1002');
    assert.ok(placed);
    await shutdown();
    store = getSqliteEventStore({ path, schemas: orderSchemas });
    transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
    stopAll.push(
      () => store.close(),
      () => transport.close(),
    );
    await transport.publish(orderEventsTopic, [messageFromEvent(placed)]);
    await shutdown();

    // The state survives reopening the file: read before any service runs.
    store = getSqliteEventStore({ path, schemas: orderSchemas });
    transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
    stopAll.push(
      () => store.close(),
      () => transport.close(),
    );
    assert.deepEqual(readServiceActions(store.database), actions);
    assert.deepEqual(readStock(store.database), stock);
    const pending = (group: string) =>
      (
        store.database
          .prepare('SELECT COUNT(*) AS n FROM factline_transport_messages WHERE group_name = ? AND message_id = ?')
          .get(group, placed.id) as { n: number }
      ).n;
    for (const group of ['inventory', 'payment', 'notification']) assert.equal(pending(group), 1, group);

    // Restart the services on the same file: the repeats find their inbox marks and change nothing.
    services = await startOrderServices(transport, store.database, { pollMs: 50 });
    stopAll.push(() => services.stop());
    const deadline = Date.now() + 5000;
    while (Object.values(services.consumers).some((c) => c.stats().duplicates < 1)) {
      assert.ok(Date.now() < deadline, 'every service saw the repeat within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const [name, consumer] of Object.entries(services.consumers)) {
      assert.deepEqual(
        { ...consumer.stats(), name },
        {
          name,
          state: 'running',
          handled: 0,
          duplicates: 1,
          retries: 0,
          deadLettered: 0,
          discarded: 0,
          errors: 0,
          lastError: undefined,
        },
      );
      assert.equal(pending(name), 0, `${name}: the repeat is acknowledged`);
    }
    const charges = store.database
      .prepare('SELECT order_id, customer_id, amount, correlation_id FROM payment_charges WHERE event_id = ?')
      .all(placed.id);
    assert.deepEqual(charges, [
      { order_id: '1002', customer_id: 'grace', amount: 40, correlation_id: 'checkout-1002' },
    ]);
    assert.equal(
      (
        store.database
          .prepare('SELECT COUNT(*) AS n FROM inventory_reservations WHERE event_id = ?')
          .get(placed.id) as {
          n: number;
        }
      ).n,
      2,
      'one reservation per item of order 1002',
    );
    assert.deepEqual(services.actions(), actions);
    assert.deepEqual(Object.fromEntries(services.stock()), { kettle: 9, mug: 20, tea: 10, lamp: 2 });
  } finally {
    await shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
