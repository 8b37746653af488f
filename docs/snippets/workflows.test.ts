import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  createMessage,
  createWorkflowHandler,
  getInMemoryEventStore,
  type InstanceSnapshotData,
  NonRetryableError,
} from '@factline/core';
import { getSqliteEventStore, getSqliteSnapshotStore } from '@factline/sqlite';
import { until } from './until.ts';
import { checkout, checkoutOnSqlite, checkoutTimesOut, checkoutWithSnapshots, parkedInstances } from './workflows.ts';

test('the workflow snippet runs on SQLite: an order placed sends ChargeCard through the relay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippet-workflows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { delivered } = await checkoutOnSqlite(
    join(dir, 'checkout.db'),
    (transport) =>
      transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: { orderId: 'o-1', total: 30 } })]),
    (check) => until(check, 10_000),
  );
  assert.deepEqual(
    delivered.map((m) => [m.type, m.data]),
    [['ChargeCard', { orderId: 'o-1', amount: 30 }]],
  );
});

test('the harness snippet: the unpaid order is cancelled when the virtual clock passes 15 minutes', async () => {
  const { types, instance } = await checkoutTimesOut();
  assert.deepEqual(types, ['OrderPlaced', 'ChargeCard', 'RefundCard', 'CancelOrder']);
  assert.equal(instance.status, 'completed');
});

test('the parked snippet retries a parked instance once its cause is fixed', async () => {
  let failing = true;
  const flaky = {
    ...checkout,
    decide: (...args: Parameters<typeof checkout.decide>) => {
      if (failing) throw new NonRetryableError('card service misconfigured');
      return checkout.decide(...args);
    },
  };
  const handler = createWorkflowHandler(flaky, { store: getInMemoryEventStore() });
  assert.equal(
    await handler.handle(createMessage({ type: 'OrderPlaced', data: { orderId: 'o-2', total: 5 } })),
    'parked',
  );
  failing = false;
  await parkedInstances(handler);
  assert.deepEqual(await handler.parked.list(), []);
  assert.equal(handler.stats().parked, 1);
});

test('the snapshots snippet: an instance past 100 events is snapshotted in the file and loads from it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippet-workflow-snapshots-'));
  const store = getSqliteEventStore({ path: join(dir, 'checkout.db') });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const warnings: unknown[] = [];
  const logger = { debug() {}, info() {}, warn: (obj: unknown) => void warnings.push(obj), error() {} };
  const handler = checkoutWithSnapshots(store, logger);
  // Each OrderPlaced records three events (the input, ChargeCard, the timer): 34 of them make 102.
  for (let i = 0; i < 34; i++) {
    const outcome = await handler.handle(createMessage({ type: 'OrderPlaced', data: { orderId: 'o-9', total: i } }));
    assert.equal(outcome, 'recorded');
  }
  const snapshots = getSqliteSnapshotStore({ database: store.database });
  const snapshot = await snapshots.load<InstanceSnapshotData>('checkout-o-9', { name: 'workflow' });
  assert.equal(snapshot?.version, 102);
  assert.deepEqual(snapshot?.state.state, { total: 33 });
  assert.equal(snapshot?.state.seen.length, 34);
  const paid = createMessage({ type: 'PaymentSucceeded', data: { orderId: 'o-9' } });
  assert.equal(await handler.handle(paid), 'recorded');
  assert.equal(await handler.handle(paid), 'duplicate');
  assert.deepEqual(warnings, []);
});
