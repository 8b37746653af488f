import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { handleCommand, isValidationError, messageFromEvent, type RecordedEvent } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteEventStore, getSqliteTransport, startSqliteProjections } from '@factline/sqlite';
import { type OrderEvent, type OrderPlaced, orderDecider } from './order.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';
import { type OrderPlacedV1, orderSchemas } from './schemas.ts';
import { orderEventsRelay, orderEventsTopic, startOrderServices } from './services.ts';

const v1Orders: OrderPlacedV1[] = [
  { orderId: '0901', customerId: 'ada', items: [{ sku: 'kettle', quantity: 1, unitPrice: 30 }], total: 30 },
  { orderId: '0902', customerId: 'grace', items: [{ sku: 'mug', quantity: 2, unitPrice: 6 }], total: 12 },
];

/**
 * A file as the release before version 2 left it: two orders placed in the
 * old shape (no currency) by a store without the registry, stamped version 1.
 */
async function fileWithV1Orders(t: TestContext): Promise<{ path: string; stored: RecordedEvent[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'orders.db');
  const previousRelease = getSqliteEventStore({ path });
  try {
    for (const data of v1Orders) {
      await previousRelease.append(
        `order-${data.orderId}`,
        [{ type: 'OrderPlaced', data, metadata: { correlationId: `checkout-${data.orderId}` } }],
        { expectedVersion: 'no-stream' },
      );
    }
    const stored: RecordedEvent[] = [];
    for await (const event of previousRelease.readAll()) stored.push(event);
    assert.deepEqual(
      stored.map((e) => [e.schemaVersion, 'currency' in (e.data as object)]),
      [
        [1, false],
        [1, false],
      ],
    );
    return { path, stored };
  } finally {
    await previousRelease.close();
  }
}

/** The rows as stored: the registry never rewrites them. */
const storedRows = (store: ReturnType<typeof getSqliteEventStore>) =>
  store.database.prepare('SELECT stream_id, schema_version, data FROM factline_events ORDER BY position').all();

test('readStream and readAll give v1 OrderPlaced events at v2 with the default currency; the rows stay as stored', async (t) => {
  const { path } = await fileWithV1Orders(t);
  const store = getSqliteEventStore({ path, schemas: orderSchemas });
  t.after(() => store.close());
  const before = storedRows(store);

  const { events } = await store.readStream<OrderEvent>('order-0901');
  const [placed] = events as OrderPlaced[];
  assert.equal((placed as unknown as RecordedEvent).schemaVersion, 2);
  assert.deepEqual(placed?.data, { ...v1Orders[0], currency: 'EUR' });

  const all: RecordedEvent[] = [];
  for await (const event of store.readAll()) all.push(event);
  assert.deepEqual(
    all.map((e) => [e.streamId, e.schemaVersion, (e.data as OrderPlaced['data']).currency]),
    [
      ['order-0901', 2, 'EUR'],
      ['order-0902', 2, 'EUR'],
    ],
  );
  assert.deepEqual(storedRows(store), before);
  assert.deepEqual(
    (before as { schema_version: number; data: string }[]).map((r) => [r.schema_version, JSON.parse(r.data)]),
    v1Orders.map((data) => [1, data]),
  );
});

test('handleCommand pays and ships an order placed at v1: its state has the currency the upcaster filled in', async (t) => {
  const { path } = await fileWithV1Orders(t);
  const store = getSqliteEventStore({ path, schemas: orderSchemas });
  t.after(() => store.close());

  // The decider checks the payment's currency against the order's: undefined would refuse it.
  const paid = await handleCommand(
    store,
    'order-0901',
    { type: 'PayOrder', orderId: '0901', amount: 30, currency: 'EUR' },
    orderDecider,
  );
  assert.deepEqual(paid.state, { status: 'paid', total: 30, currency: 'EUR', itemCount: 1, paid: 30 });
  await assert.rejects(
    handleCommand(
      store,
      'order-0902',
      { type: 'PayOrder', orderId: '0902', amount: 12, currency: 'GBP' },
      orderDecider,
    ),
    /payment in GBP, the order is in EUR/,
  );
  const shipped = await handleCommand(
    store,
    'order-0901',
    { type: 'ShipOrder', orderId: '0901', carrier: 'post' },
    orderDecider,
  );
  assert.equal(shipped.state.status, 'shipped');
  assert.deepEqual(
    (storedRows(store) as { stream_id: string; schema_version: number }[]).map((r) => [r.stream_id, r.schema_version]),
    [
      ['order-0901', 1],
      ['order-0902', 1],
      ['order-0901', 1],
      ['order-0901', 1],
    ],
    'the v1 rows are kept; OrderPaid and OrderShipped are at their version 1',
  );
});

test('appends are validated against version 2: no currency, a bad one or an unknown type is refused, nothing written', async (t) => {
  const { path } = await fileWithV1Orders(t);
  const store = getSqliteEventStore({ path, schemas: orderSchemas });
  t.after(() => store.close());
  const head = await store.headPosition();
  const refusals: [string, unknown][] = [
    ['OrderPlaced', { ...v1Orders[0], orderId: '0903' }],
    ['OrderPlaced', { ...v1Orders[0], orderId: '0903', currency: 'euro' }],
    ['OrderRefunded', { orderId: '0901' }],
  ];
  for (const [type, data] of refusals) {
    await assert.rejects(
      store.append('order-0903', [{ type, data }]),
      (error) => isValidationError(error) && /currency|OrderRefunded/.test(error.message),
    );
  }
  assert.equal(await store.headPosition(), head);
});

test('order_summaries reads v1 orders at v2, live and on a rebuild', async (t) => {
  const { path } = await fileWithV1Orders(t);
  const store = getSqliteEventStore({ path, schemas: orderSchemas });
  const projections = await startSqliteProjections(store, [orderSummaries]);
  t.after(async () => {
    await projections.stop();
    await store.close();
  });
  await handleCommand(
    store,
    'order-0903',
    {
      type: 'PlaceOrder',
      orderId: '0903',
      customerId: 'alan',
      currency: 'GBP',
      items: [{ sku: 'lamp', quantity: 1, unitPrice: 45 }],
    },
    orderDecider,
  );
  await projections.waitFor('order_summaries', await store.headPosition(), { timeoutMs: 5000 });
  const live = readOrderSummaries(store.database);
  assert.deepEqual(
    live.map((r) => [r.order_id, r.total, r.currency]),
    [
      ['0901', 30, 'EUR'],
      ['0902', 12, 'EUR'],
      ['0903', 45, 'GBP'],
    ],
  );
  await projections.rebuild('order_summaries');
  assert.deepEqual(readOrderSummaries(store.database), live);
  assert.equal(projections.status('order_summaries').lastError, undefined);
});

test('the services get v1 orders at v2: a v1 message the previous release sent, and the relay’s copies', async (t) => {
  const { path, stored } = await fileWithV1Orders(t);
  const store = getSqliteEventStore({ path, schemas: orderSchemas });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  const services = await startOrderServices(transport, store.database, { pollMs: 50 });
  t.after(async () => {
    await services.stop();
    await transport.close();
    await store.close();
  });
  // In flight at the upgrade: order 0901 as the previous release relayed it (header version 1, no currency).
  const inFlight = messageFromEvent(stored[0] as RecordedEvent);
  assert.equal(inFlight.headers['factline-schema-version'], '1');
  await transport.publish(orderEventsTopic, [inFlight]);
  await services.waitUntilHandled([stored[0] as RecordedEvent], 5000);
  const charge = (orderId: string) =>
    store.database.prepare('SELECT amount, currency FROM payment_charges WHERE order_id = ?').all(orderId);
  assert.deepEqual(charge('0901'), [{ amount: 30, currency: 'EUR' }]);

  // Now the relay (reading through the registry) publishes both orders at v2.
  const projections = await startSqliteProjections(store, [orderEventsRelay(transport)]);
  t.after(() => projections.stop());
  await services.waitUntilHandled(stored, 5000);
  // Its copy of 0901 is a repeat each group's inbox recognises.
  await waitUntil(
    () => Object.values(services.consumers).every((c) => c.stats().duplicates === 1),
    'the relay’s copy of order 0901 reaches every group',
    5000,
  );
  assert.deepEqual(charge('0901'), [{ amount: 30, currency: 'EUR' }]);
  assert.deepEqual(charge('0902'), [{ amount: 12, currency: 'EUR' }]);
  assert.deepEqual(
    services.actions().notification.map((a) => a.summary),
    ['to ada: order placed, total 30 EUR', 'to grace: order placed, total 12 EUR'],
  );
  for (const consumer of Object.values(services.consumers)) {
    assert.equal(consumer.stats().errors, 0);
    assert.equal(consumer.stats().deadLettered, 0);
  }
});
