import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { getInMemoryTransport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { openSqliteDatabase } from '../store/sqlite-event-store.ts';
import { getSqliteOutbox, startSqliteOutboxRelay } from './sqlite-outbox.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

test('the relay reports the outbox backlog and the age of its oldest row, read from the table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-outbox-metrics-'));
  const db = openSqliteDatabase(join(dir, 'app.db'));
  // Rows enqueued 20 s before the collection: the lag is known within the test's run time.
  const outbox = getSqliteOutbox({ database: db, now: () => Date.now() - 20_000 });
  const transport = getInMemoryTransport();
  const errors: unknown[] = [];
  db.transaction(() =>
    outbox.enqueue(db, 'payments', [
      { type: 'ChargeCard', data: {} },
      { type: 'ChargeCard', data: {} },
    ]),
  )();
  // No subscription to 'payments' yet: the relay holds its rows, they stay in the table.
  const relay = startSqliteOutboxRelay(outbox, transport, { lease: false, pollMs: 5, onError: (e) => errors.push(e) });
  const began = Date.now();
  try {
    await relay.ready();
    await waitUntil(() => relay.stats().held.includes('payments'), 'the rows held');
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 2 }]);
    const [lag] = await sdk.points('factline.relay.lag');
    const seconds = lag?.value as number;
    assert.ok(seconds >= 20 && seconds < 20 + (Date.now() - began) / 1000 + 1, `about 20 s, got ${seconds}`);

    await transport.declareSubscription('payments', 'billing');
    await waitUntil(() => relay.stats().published === 2 && outbox.pending() === 0, 'both published and removed');
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 0 }]);
    assert.deepEqual(await sdk.points('factline.relay.lag'), [{ attributes: {}, value: 0 }]);
    assert.deepEqual(await sdk.points('factline.relay.published'), [{ attributes: {}, value: 2 }]);
    assert.ok(errors.length >= 1, 'the hold was reported');
  } finally {
    await relay.stop();
    await transport.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('relays of one outbox file in a process, holding the lease or standing by, count its rows once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-outbox-metrics-'));
  const db = openSqliteDatabase(join(dir, 'app.db'));
  // A second connection to the file: the same table.
  const other = openSqliteDatabase(join(dir, 'app.db'));
  const outbox = getSqliteOutbox({ database: db });
  const transport = getInMemoryTransport();
  db.transaction(() =>
    outbox.enqueue(db, 'payments', [
      { type: 'ChargeCard', data: {} },
      { type: 'ChargeCard', data: {} },
    ]),
  )();
  const options = { pollMs: 5, leaseCheckMs: 50, onError: () => {} };
  const relays = [
    startSqliteOutboxRelay(outbox, transport, options),
    startSqliteOutboxRelay(outbox, transport, options),
    startSqliteOutboxRelay(getSqliteOutbox({ database: other }), transport, options),
  ];
  try {
    await Promise.all(relays.map((relay) => relay.ready()));
    // No subscription to 'payments': the holder holds its rows, they stay in the table.
    await waitUntil(() => relays.some((relay) => relay.stats().held.includes('payments')), 'the rows held');
    assert.deepEqual(relays.map((relay) => relay.stats().lease).sort(), ['held', 'standby', 'standby']);
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 2 }]);
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
    await transport.close();
    other.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
