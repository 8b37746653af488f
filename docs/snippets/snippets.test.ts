import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createConsumer, createMessage, type Message, type RebuildProgress } from '@factline/core';
import { getSqliteEventStore, getSqliteTransport } from '@factline/sqlite';
import { correlate, eventBus, handleDeadLetters, inventory, relayEvents, sqliteOutbox } from './messaging.ts';
import { inlineSqlite, runSqliteProjections, switchToVersion2 } from './projections.ts';
import { quickStart } from './quick-start.ts';
import { sqliteWithOptions } from './store-options.ts';
import { typedEvents } from './typed-events.ts';
import { until } from './until.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the README quick start runs twice in a row on the same file, each run with a cart of its own', async (t) => {
  const path = join(tempDir(t), 'shop.db');
  const logged: unknown[][] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => logged.push(args);
  try {
    const first = await quickStart(path);
    const second = await quickStart(path);
    for (const run of [first, second]) {
      assert.deepEqual(run.state, { items: ['tea'], open: false });
      assert.equal(run.version, 2);
      assert.deepEqual(
        run.events.map((e) => e.type),
        ['ItemAdded', 'CheckedOut'],
      );
    }
    assert.notEqual(first.cartId, second.cartId);
    // The second run prints the first run's carts too: the file keeps them.
    assert.deepEqual(logged, [
      [1, first.cartId, 'ItemAdded'],
      [2, first.cartId, 'CheckedOut'],
      [1, first.cartId, 'ItemAdded'],
      [2, first.cartId, 'CheckedOut'],
      [3, second.cartId, 'ItemAdded'],
      [4, second.cartId, 'CheckedOut'],
    ]);
  } finally {
    console.log = original;
  }
});

test('the SQLite options snippet opens a store that appends and reads', async (t) => {
  const store = sqliteWithOptions(join(tempDir(t), 'app.db'));
  try {
    await store.append('s-1', [{ type: 'Opened', data: {} }]);
    assert.equal((await store.readStream('s-1')).version, 1);
  } finally {
    await store.close();
  }
});

test('the projection snippets: async runner, rebuild with progress, inline, and a side-by-side version 2', async (t) => {
  const dir = tempDir(t);
  const progress: RebuildProgress[] = [];
  const run = await runSqliteProjections(join(dir, 'async.db'), (p) => progress.push(p));
  assert.deepEqual(run.rows, [{ order_id: '1', status: 'placed', total: 30 }]);
  assert.equal(run.checkpoint, 1);
  assert.equal(run.lag, 0);
  assert.equal(run.lease, 'held');
  assert.equal(progress.at(-1)?.fraction, 1);

  assert.deepEqual(await inlineSqlite(join(dir, 'inline.db')), [{ order_id: '2', status: 'placed', total: 12 }]);

  const switched = await switchToVersion2(join(dir, 'versions.db'));
  assert.equal(switched.before, 'order_summaries');
  assert.equal(switched.after, 'order_summaries_v2');
  assert.deepEqual(switched.rows, [{ order_id: '3', paid: 1 }]);
});

test('the context snippet: the append and the new message carry the incoming correlation, caused by it', async () => {
  const store = getSqliteEventStore({ path: ':memory:' });
  try {
    const incoming = createMessage({ type: 'CheckOut', data: {}, metadata: { correlationId: 'checkout-7' } });
    const next = await correlate(store, incoming);
    const { events } = await store.readStream('order-1');
    for (const metadata of [events[0]?.metadata, next.metadata]) {
      assert.equal(metadata?.correlationId, 'checkout-7');
      assert.equal(metadata?.causationId, incoming.id);
    }
  } finally {
    await store.close();
  }
});

test('the relay and outbox snippets publish an appended event and an enqueued row to subscribers of orders', async (t) => {
  const store = getSqliteEventStore({ path: join(tempDir(t), 'messaging.db') });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 10 });
  const received: Message[] = [];
  const stock = await inventory(transport, async () => {});
  const audit = createConsumer({ name: 'audit', topic: 'orders', transport, handler: (m) => void received.push(m) });
  await audit.start();
  const relay = await relayEvents(store, transport);
  const outboxRelay = sqliteOutbox(store.database, transport);
  try {
    await store.append('order-9', [{ type: 'OrderPlaced', data: { sku: 'tea' } }]);
    await until(() => received.length === 2);
    assert.deepEqual(received.map((m) => [m.type, m.key]).sort(), [
      ['OrderPlaced', 'o-1'],
      ['OrderPlaced', 'order-9'],
    ]);
    await until(() => stock.stats().handled === 2);
  } finally {
    await outboxRelay.stop();
    await relay.stop();
    await stock.stop();
    await audit.stop();
    await transport.close();
    await store.close();
  }
});

test('the event bus snippet: each group gets the events of its types', async (t) => {
  const transport = getSqliteTransport({ path: join(tempDir(t), 'bus.db'), pollIntervalMs: 10 });
  const seen: string[] = [];
  const bus = await eventBus(transport, {
    reserve: async () => void seen.push('inventory'),
    charge: async () => void seen.push('payment'),
    notify: async (message) => void seen.push(`notification ${message.type}`),
  });
  try {
    await until(() => seen.length === 3);
    assert.deepEqual(seen.sort(), ['inventory', 'notification OrderPlaced', 'payment']);
  } finally {
    await bus.stop();
    await transport.close();
  }
});

test('the consumer and dead-letter snippets: an unknown sku is dead-lettered at once, shown and redriven', async (t) => {
  const transport = getSqliteTransport({ path: join(tempDir(t), 'stock.db'), pollIntervalMs: 10 });
  const reserved: unknown[] = [];
  const stock = await inventory(transport, async (data) => void reserved.push(data));
  try {
    await transport.publish('orders', [
      createMessage({ type: 'ReserveStock', key: 'a', data: { sku: 'tea' } }),
      createMessage({ type: 'ReserveStock', key: 'b', data: { sku: 'unknown' } }),
    ]);
    await until(() => stock.stats().handled === 1 && stock.stats().deadLettered === 1);
    assert.equal(stock.stats().retries, 0);
    const { record, redriven, discarded } = await handleDeadLetters(stock);
    assert.equal(record?.error.message, 'unknown sku');
    assert.equal(record?.attempts, 1);
    assert.equal(redriven, 1);
    assert.equal(discarded, 0);
    await until(() => stock.stats().deadLettered === 2); // redriven, and refused again
    assert.deepEqual(reserved, [{ sku: 'tea' }]);
  } finally {
    await stock.stop();
    await transport.close();
  }
});

test('the typed events snippet reads the union back narrowed, and its typed projection sums the cart', async (t) => {
  const result = await typedEvents(join(tempDir(t), 'typed.db'));
  assert.deepEqual(result, { total: 4, newEvents: ['tea'], skus: ['tea'], checkedOut: 4 });
});
