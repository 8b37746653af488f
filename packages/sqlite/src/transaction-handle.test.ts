import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createConsumer, createMessage, defaultRetryPolicy, defineProjection, isValidationError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteOutbox,
  getSqliteTransport,
  startSqliteProjections,
} from './index.ts';
import { connectionOf, endTransactionHandle, openTransactionHandle } from './transaction-handle.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-handle-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `handle-${++files}.db`);

/** Collects the process warnings an async handler's refused continuation reports. */
const lateFailures = () => {
  const seen: Error[] = [];
  const listen = (warning: Error) => {
    if ((warning as { code?: string }).code === 'FACTLINE_LATE_HANDLER_FAILURE') seen.push(warning);
  };
  process.on('warning', listen);
  return { seen, stop: () => process.off('warning', listen) };
};

test('a handle works as the connection while live; it and its statements refuse once ended', () => {
  const store = getSqliteEventStore({ path: ':memory:' });
  const db = store.database;
  db.exec('CREATE TABLE t (v TEXT)');
  const tx = openTransactionHandle(db);
  const insert = tx.prepare('INSERT INTO t (v) VALUES (?)');
  insert.run('in time');
  assert.equal(tx.name, db.name);
  assert.equal(tx.open, true);
  assert.equal(connectionOf(tx), db);
  assert.equal(insert.database, tx);
  const nested = tx.transaction(() => tx.prepare('INSERT INTO t (v) VALUES (?)').run('nested'));
  nested.immediate();
  endTransactionHandle(tx);
  for (const late of [
    () => insert.run('late'),
    () => tx.prepare('SELECT 1'),
    () => tx.exec("INSERT INTO t (v) VALUES ('late')"),
    () => tx.pragma('user_version'),
    () => nested(),
    () => nested.deferred(),
    () => connectionOf(tx),
  ]) {
    assert.throws(late, (error) => isValidationError(error) && /transaction has ended/.test(error.message));
  }
  assert.equal(tx.open, true, 'property reads keep working');
  assert.deepEqual(
    db
      .prepare('SELECT v FROM t')
      .all()
      .map((r) => (r as { v: string }).v),
    ['in time', 'nested'],
  );
  store.close();
});

test('an inbox handler that awaits then writes: refused, dead-lettered, no row; a redrive after the fix applies it once', async () => {
  const transport = getSqliteTransport({ path: file(), pollIntervalMs: 10 });
  const db = transport.database;
  db.exec('CREATE TABLE invoices (order_id TEXT NOT NULL)');
  const warnings = lateFailures();
  let fixed = false;
  let lateError: unknown;
  const consumer = createConsumer<Database>({
    name: 'billing',
    topic: 'orders',
    transport,
    pollMs: 10,
    inbox: getSqliteInbox({ database: db }),
    deadLetters: getSqliteDeadLetterStore({ database: db }),
    retryPolicy: defaultRetryPolicy({ immediate: 1, delaysMs: [], jitter: 0 }),
    handler: (message, tx) => {
      const write = () => tx.prepare('INSERT INTO invoices (order_id) VALUES (?)').run(message.key);
      if (fixed) return write();
      return (async () => {
        await Promise.resolve();
        try {
          write();
        } catch (error) {
          lateError = error;
          throw error;
        }
      })();
    },
  });
  try {
    await consumer.start();
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {}, key: 'o-1' })]);
    await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
    await waitUntil(() => warnings.seen.length > 0, 'the late failure reported');
    assert.ok(isValidationError(lateError), 'the write after the await was refused');
    assert.match(warnings.seen[0]?.message ?? '', /inbox handler failed after its transaction ended/);
    const [record] = await consumer.deadLetters.list();
    assert.match(record?.error.message ?? '', /returned a promise/);
    assert.equal(db.prepare('SELECT COUNT(*) AS n FROM invoices').pluck().get(), 0, 'no row');

    fixed = true;
    assert.equal(await consumer.deadLetters.redrive(record?.id as string), 1);
    await waitUntil(() => consumer.stats().handled === 1, 'the redrive applied');
    assert.deepEqual(db.prepare('SELECT order_id FROM invoices').pluck().all(), ['o-1'], 'applied once');
  } finally {
    warnings.stop();
    await consumer.stop();
    await transport.close();
  }
});

test('an async projection handler that awaits then writes: no row, whatever the attempts', async () => {
  const store = getSqliteEventStore({ path: file() });
  store.database.exec('CREATE TABLE seen (position INTEGER NOT NULL)');
  const warnings = lateFailures();
  let attempts = 0;
  const projection = defineProjection<Database>({
    name: 'late_seen',
    handles: ['Seen'],
    handle: async (events, tx) => {
      attempts += 1;
      await Promise.resolve();
      for (const e of events) tx.prepare('INSERT INTO seen (position) VALUES (?)').run(e.position);
    },
  });
  const runner = await startSqliteProjections(store, [projection], { lease: false });
  try {
    await store.append('s-1', [{ type: 'Seen', data: {} }]);
    await waitUntil(() => runner.status('late_seen').state === 'failed', 'the projection failed');
    await waitUntil(() => warnings.seen.length >= attempts, 'each late failure reported');
    assert.ok(attempts >= 1);
    assert.equal(store.database.prepare('SELECT COUNT(*) FROM seen').pluck().get(), 0, 'no row per attempt');
  } finally {
    warnings.stop();
    await runner.stop();
    await store.close();
  }
});

test('an inline projection: an append it fails leaves no row; a write after the append committed is refused', async () => {
  const warnings = lateFailures();
  let kept: Database | undefined;
  const store = getSqliteEventStore({
    path: file(),
    inlineProjections: [
      defineProjection<Database>({
        name: 'inline_seen',
        handles: ['Seen', 'Late'],
        init: (tx) => {
          tx.exec('CREATE TABLE IF NOT EXISTS inline_seen (position INTEGER NOT NULL)');
        },
        handle: (events, tx) => {
          kept = tx;
          if (events.some((e) => e.type === 'Late')) {
            return (async () => {
              await Promise.resolve();
              tx.prepare('INSERT INTO inline_seen (position) VALUES (0)').run();
            })();
          }
          for (const e of events) tx.prepare('INSERT INTO inline_seen (position) VALUES (?)').run(e.position);
        },
      }),
    ],
  });
  const rows = () => store.database.prepare('SELECT position FROM inline_seen').pluck().all();
  try {
    await assert.rejects(store.append('s-1', [{ type: 'Late', data: {} }]), isValidationError);
    await waitUntil(() => warnings.seen.length === 1, 'the late failure reported');
    assert.deepEqual(rows(), [], 'the rejected append left no row');

    const { position } = await store.append('s-2', [{ type: 'Seen', data: {} }]);
    assert.throws(() => kept?.prepare('INSERT INTO inline_seen (position) VALUES (-1)'), isValidationError);
    const outbox = getSqliteOutbox({ database: store.database });
    assert.throws(
      () => outbox.enqueue(kept as Database, 'topic', [{ type: 'X', data: {}, key: 'k' }]),
      isValidationError,
    );
    assert.deepEqual(rows(), [position]);
  } finally {
    warnings.stop();
    await store.close();
  }
});
