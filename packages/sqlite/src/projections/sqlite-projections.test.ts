import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { defineProjection, type RecordedEvent } from '@factline/core';
import { createProjectionRunner } from '@factline/core/adapter';
import {
  type CounterModel,
  type ProjectionEnvironment,
  testProjectionConformance,
  waitUntil,
} from '@factline/core/testing';
import Sqlite, { type Database } from 'better-sqlite3';
import {
  getSqliteEventStore,
  getSqliteProjectionBackend,
  readLiveProjectionVersion,
  type SqliteEventStore,
  startSqliteProjections,
} from '../index.ts';
import { connectionOf } from '../transaction-handle.ts';
import { sqliteCounterModel } from './fixtures/projection-child.ts';
import { projectionLeaseName } from './sqlite-projections.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-projections-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `projections-${++files}.db`);

const environmentOn = (store: SqliteEventStore, close: () => Promise<void>): ProjectionEnvironment<Database> => ({
  store,
  backend: getSqliteProjectionBackend(store),
  model: sqliteCounterModel(store.database),
  close,
});

testProjectionConformance<Database>({
  name: 'sqlite (a file per case)',
  async createEnvironment() {
    const store = getSqliteEventStore({ path: file() });
    return environmentOn(store, () => store.close());
  },
});

// The cases keep to names of their own, so they must also pass on one file they all share.
let shared: ProjectionEnvironment<Database> | undefined;
testProjectionConformance<Database>({
  name: 'sqlite (one file shared by every case)',
  async createEnvironment() {
    if (!shared) {
      const store = getSqliteEventStore({ path: file() });
      shared = environmentOn(store, async () => {});
    }
    return shared;
  },
  teardown: () => shared?.store.close(),
});

/** A counter projection on the model of the fixture, for the tests below. */
function counter(name: string, type: string) {
  let model: CounterModel<Database> | undefined;
  const on = (db: Database) => {
    // The model's statements are prepared once, on the connection: the handle a handler gets ends with its transaction.
    model ??= sqliteCounterModel(connectionOf(db));
    return model;
  };
  return defineProjection<Database>({
    name,
    handles: [type],
    init: (db) => on(db).init(db),
    handle: (events, db) => on(db).apply(db, events, name),
  });
}

async function logCounts(store: SqliteEventStore, type: string) {
  const perStream: Record<string, number> = {};
  const positions: number[] = [];
  for await (const event of store.readAll({ types: [type] })) {
    perStream[event.streamId] = (perStream[event.streamId] ?? 0) + 1;
    positions.push(event.position);
  }
  return { perStream, positions };
}

const checkpointOf = (store: SqliteEventStore, name: string) =>
  (
    store.database.prepare('SELECT position FROM factline_projections WHERE name = ?').get(name) as
      | { position: number }
      | undefined
  )?.position ?? 0;

describe('sqlite projections: a crash in the middle of a batch', () => {
  it('kill -9 inside a batch: after a restart every event is applied exactly once', async () => {
    const path = file();
    const name = 'crash_counter';
    const seed = getSqliteEventStore({ path });
    // 3000 handled events over 10 streams, with 300 unhandled ones among them.
    await Promise.all(
      Array.from({ length: 60 }, (_, a) =>
        seed.append(
          `acct-${a % 10}`,
          Array.from({ length: 55 }, (_, i) => ({ type: i % 11 === 10 ? 'Other' : 'Counted', data: { a, i } })),
        ),
      ),
    );
    const log = await logCounts(seed, 'Counted');
    assert.equal(log.positions.length, 3000);
    await seed.close();

    const batchSize = 100;
    const killAfter = 5;
    const script = new URL('./fixtures/projection-child.ts', import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [
        '--conditions=factline-source',
        '--import',
        'tsx',
        script,
        path,
        name,
        'Counted',
        `${batchSize}`,
        `${killAfter}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    assert.equal(exit.signal, 'SIGKILL', `the child was not killed mid-batch: exit ${exit.code}; ${output}`);

    const store = getSqliteEventStore({ path });
    const model = sqliteCounterModel(store.database);
    const committed = await model.read(name);
    // The batches before the kill committed whole; the one killed left nothing.
    assert.equal(committed.applied.length, killAfter * batchSize);
    assert.deepEqual(committed.applied, log.positions.slice(0, killAfter * batchSize));
    assert.equal(checkpointOf(store, name), log.positions[killAfter * batchSize - 1]);

    const runner = await startSqliteProjections(store, [counter(name, 'Counted')], { batchSize });
    await runner.waitFor(name, await store.headPosition(), { timeoutMs: 30_000 });
    await runner.stop();
    const final = await model.read(name);
    const seen = new Set<number>();
    const twice = final.applied.filter((p) => seen.has(p) || !seen.add(p));
    assert.deepEqual(twice, [], 'positions applied twice');
    assert.deepEqual(final.applied, log.positions);
    assert.deepEqual(final.perStream, log.perStream);
    await store.close();
  });
});

describe('sqlite projections: inline', () => {
  interface Balance {
    account: string;
    total: number;
    events: number;
  }
  const balances = defineProjection<Database>({
    name: 'balances',
    handles: ['Deposited'],
    init: (db) => {
      db.exec('CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL, events INTEGER)');
    },
    handle: (events: readonly RecordedEvent[], db) => {
      const upsert = db.prepare(
        `INSERT INTO balances (account, total, events) VALUES (?, ?, 1)
         ON CONFLICT (account) DO UPDATE SET total = total + excluded.total, events = events + 1`,
      );
      for (const event of events) {
        const { amount } = event.data as { amount: number };
        // Write first, then refuse: the append's rollback must undo the write.
        upsert.run(event.streamId, amount);
        if (amount < 0) throw new Error(`negative deposit on ${event.streamId}`);
      }
    },
  });
  const deposit = (amount: number) => ({ type: 'Deposited', data: { amount } });
  const rows = (store: SqliteEventStore) =>
    store.database.prepare('SELECT account, total, events FROM balances ORDER BY account').all() as Balance[];

  it('the read model is up to date the moment append resolves', async () => {
    const store = getSqliteEventStore({ path: file(), inlineProjections: [balances] });
    await store.append('acct-1', [deposit(10), deposit(5)]);
    assert.deepEqual(rows(store), [{ account: 'acct-1', total: 15, events: 2 }]);
    await store.append('acct-1', [{ type: 'Noted', data: {} }, deposit(1)]);
    assert.deepEqual(rows(store), [{ account: 'acct-1', total: 16, events: 3 }]);
    await store.close();
  });

  it('a throwing handler fails its append, writing nothing; the others of its group commit succeed', async () => {
    const store = getSqliteEventStore({ path: file(), inlineProjections: [balances] });
    await store.append('acct-1', [deposit(1)]);
    const head = await store.headPosition();
    const commits = store.stats().commits;
    const results = await Promise.allSettled([
      store.append('acct-2', [deposit(10)]),
      store.append('acct-3', [deposit(7), deposit(-1)]),
      store.append('acct-4', [deposit(3)]),
    ]);
    assert.equal(store.stats().commits, commits + 1, 'the three appends were not committed together');
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /negative deposit on acct-3/);
    assert.equal((await store.readStream('acct-3')).exists, false);
    const appended = [];
    for await (const event of store.readAll({ after: head })) appended.push(event.streamId);
    assert.deepEqual(appended, ['acct-2', 'acct-4']);
    assert.deepEqual(rows(store), [
      { account: 'acct-1', total: 1, events: 1 },
      { account: 'acct-2', total: 10, events: 1 },
      { account: 'acct-4', total: 3, events: 1 },
    ]);

    // Alone in its transaction, too.
    const before = await store.headPosition();
    await assert.rejects(store.append('acct-1', [deposit(2), deposit(-5)]), /negative deposit on acct-1/);
    assert.equal(await store.headPosition(), before);
    assert.equal((await store.readStream('acct-1')).version, 1);
    assert.deepEqual(rows(store)[0], { account: 'acct-1', total: 1, events: 1 });
    await store.close();
  });

  it('a handler returning a promise fails the append with ValidationError', async () => {
    const store = getSqliteEventStore({
      path: file(),
      inlineProjections: [{ name: 'async_model', handles: ['Deposited'], handle: async () => {} }],
    });
    await assert.rejects(store.append('acct-1', [deposit(1)]), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'VALIDATION');
      assert.match(error.message, /async_model/);
      return true;
    });
    assert.equal(await store.headPosition(), 0);
    assert.equal((await store.readStream('acct-1')).exists, false);
    // Events it does not handle are not held up.
    await store.append('acct-1', [{ type: 'Noted', data: {} }]);
    assert.equal(await store.headPosition(), 1);
    await store.close();
  });
});

describe('sqlite projections: live latency', () => {
  it('append then waitFor resolves on the in-process signal, not the idle check', async () => {
    const store = getSqliteEventStore({ path: file() });
    const model = sqliteCounterModel(store.database);
    for (let i = 0; i < 5; i++)
      await store.append(`live-${i}`, [
        { type: 'Counted', data: {} },
        { type: 'Other', data: {} },
      ]);
    // The idle check would take a minute: only the append signal can wake the runner in time.
    const runner = await startSqliteProjections(store, [counter('live', 'Counted')], { idleCheckMs: 60_000 });
    await runner.waitFor('live', await store.headPosition(), { timeoutMs: 5000 });

    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const { position } = await store.append(`live-${i % 3}`, [{ type: 'Counted', data: { i } }]);
      await runner.waitFor('live', position, { timeoutMs: 10_000 });
      latencies.push(performance.now() - started);
      assert.ok((await model.read('live')).applied.includes(position));
    }
    // A burst of concurrent appends, and one of a type the projection skips.
    const started = performance.now();
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.append(`live-${i}`, [{ type: i === 9 ? 'Other' : 'Counted', data: {} }]),
      ),
    );
    await runner.waitFor('live', Math.max(...burst.map((r) => r.position)), { timeoutMs: 10_000 });
    latencies.push(performance.now() - started);
    const slowest = Math.max(...latencies);
    // Well under the minute of the idle check, with room for a loaded machine (typically a few ms).
    assert.ok(slowest < 5000, `slowest append-to-applied ${slowest.toFixed(1)} ms`);
    const log = await logCounts(store, 'Counted');
    assert.deepEqual((await model.read('live')).applied, log.positions);

    // Stopping wakes the idle wait too, rather than waiting out the minute.
    const stopping = performance.now();
    await runner.stop();
    assert.ok(performance.now() - stopping < 5000, 'stop waited for the idle check');
    await store.close();
  });
});

describe('sqlite projections: side-by-side versions', () => {
  /** Totals per stream (v1: `totals`), or totals and event counts (v2: `totals_v2`, retiring `totals`). */
  const totals = (version: 1 | 2) =>
    defineProjection<Database>({
      name: 'totals',
      ...(version === 2 ? { version } : {}),
      handles: ['Added'],
      init: (db) => {
        db.exec(
          version === 1
            ? 'CREATE TABLE IF NOT EXISTS totals (stream_id TEXT PRIMARY KEY, total INTEGER NOT NULL)'
            : 'CREATE TABLE IF NOT EXISTS totals_v2 (stream_id TEXT PRIMARY KEY, total INTEGER NOT NULL, events INTEGER NOT NULL)',
        );
      },
      handle: (events, db) => {
        const upsert = db.prepare(
          version === 1
            ? `INSERT INTO totals (stream_id, total) VALUES (?, ?)
               ON CONFLICT (stream_id) DO UPDATE SET total = total + excluded.total`
            : `INSERT INTO totals_v2 (stream_id, total, events) VALUES (?, ?, 1)
               ON CONFLICT (stream_id) DO UPDATE SET total = total + excluded.total, events = events + 1`,
        );
        for (const event of events) upsert.run(event.streamId, (event.data as { amount: number }).amount);
      },
      ...(version === 2
        ? {
            retire: (db: Database, previous: number) => {
              assert.equal(previous, 1);
              db.exec('DROP TABLE IF EXISTS totals');
            },
          }
        : {}),
    });
  const tableExists = (store: SqliteEventStore, table: string) =>
    store.database.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;

  it('v2 builds in a lease of its own next to v1, switches once caught up, retires v1; reads find the live version', async () => {
    const store = getSqliteEventStore({ path: file() });
    // Before any projection backend opened the file: version 1.
    assert.equal(readLiveProjectionVersion(store, 'totals'), 1);
    for (const version of [0, 1.5, -2]) {
      await assert.rejects(startSqliteProjections(store, [{ ...totals(1), version }]), (error: Error) => {
        assert.equal((error as Error & { code?: string }).code, 'VALIDATION');
        assert.match(error.message, /version: must be a positive integer/);
        return true;
      });
    }
    for (let i = 1; i <= 60; i++) await store.append(`acc-${i % 3}`, [{ type: 'Added', data: { amount: i } }]);
    const options = { leaseCheckMs: 50, idleCheckMs: 50 };
    const v1 = await startSqliteProjections(store, [totals(1)], options);
    await v1.waitFor('totals', await store.headPosition());
    assert.equal(readLiveProjectionVersion(store.database, 'totals'), 1);

    const switches: string[] = [];
    const v2 = await startSqliteProjections(store, [totals(2)], {
      ...options,
      batchSize: 5,
      maxBatchSize: 5,
      onSwitch: (name, from, to) => switches.push(`${name}:${from}->${to}`),
    });
    assert.equal(v1.status('totals').lease, 'held');
    assert.equal(v2.status('totals').lease, 'held');
    const leases = store.database.prepare('SELECT name FROM factline_leases ORDER BY name').all() as { name: string }[];
    assert.deepEqual(
      leases.map((row) => row.name),
      [projectionLeaseName('totals'), projectionLeaseName('totals', 2)],
    );
    assert.equal(projectionLeaseName('totals', 2), 'projection:totals@v2');
    for (let i = 61; i <= 70; i++) await store.append(`acc-${i % 3}`, [{ type: 'Added', data: { amount: i } }]);
    await waitUntil(() => v2.status('totals').liveVersion === 2, 'v2 to go live');
    assert.deepEqual(switches, ['totals:1->2']);
    assert.equal(readLiveProjectionVersion(store, 'totals'), 2);
    assert.equal(await v1.liveVersion('totals'), 2);
    const migrations = store.database
      .prepare("SELECT version FROM factline_migrations WHERE component = 'projections' ORDER BY version")
      .all() as { version: number }[];
    assert.deepEqual(
      migrations.map((m) => m.version),
      [1, 2, 3, 4],
    );

    const head = await store.headPosition();
    await v2.waitFor('totals', head);
    const expected = new Map<string, [number, number]>();
    for (let i = 1; i <= 70; i++) {
      const [total, events] = expected.get(`acc-${i % 3}`) ?? [0, 0];
      expected.set(`acc-${i % 3}`, [total + i, events + 1]);
    }
    assert.deepEqual(
      store.database.prepare('SELECT stream_id, total, events FROM totals_v2 ORDER BY stream_id').raw().all(),
      [...expected].sort().map(([stream, [total, events]]) => [stream, total, events]),
    );
    // v1's table retired; v1 stopped as superseded (it keeps its lease, so no stand-by takes v1 up).
    assert.equal(tableExists(store, 'totals'), false);
    await waitUntil(() => v1.status('totals').state === 'stopped', 'v1 to stop as superseded');
    assert.match(v1.status('totals').lastError?.message ?? '', /superseded/);
    await assert.rejects(v1.waitFor('totals', head), { code: 'PROJECTION_SUPERSEDED' });

    // A v1 runner started now stands by, and refuses to run v1 once it holds the lease.
    const late = await startSqliteProjections(store, [totals(1)], options);
    assert.equal(late.status('totals').lease, 'standby');
    assert.equal(late.status('totals').liveVersion, 2);
    await assert.rejects(late.waitFor('totals', head), { code: 'PROJECTION_SUPERSEDED' });
    await v1.stop();
    const refused = await waitUntil(() => {
      const status = late.status('totals');
      return status.lease === 'held' && status.lastError !== undefined && status;
    }, 'the late v1 runner to take the lease and refuse v1');
    assert.equal(refused.state, 'stopped');
    assert.equal(refused.version, 1);
    assert.match(refused.lastError?.message ?? '', /superseded/);
    assert.equal(tableExists(store, 'totals'), false, 'the refused v1 ran init');

    // Without leases too.
    const unleased = await startSqliteProjections(store, [totals(1)], { lease: false });
    assert.equal(unleased.status('totals').state, 'stopped');
    assert.equal(await unleased.liveVersion('totals'), 2);
    await Promise.all([late.stop(), v2.stop(), unleased.stop()]);
    await store.close();
  });
});

describe('sqlite projections: a transaction begun by hand on the connection', () => {
  it('a batch waits for it to end instead of joining it: its rollback undoes nothing the runner counted', async () => {
    const path = file();
    const store = getSqliteEventStore({ path });
    // Another process appending to the file while this one holds its own transaction open.
    const writer = getSqliteEventStore({ path });
    const db = store.database;
    const projection = defineProjection<Database>({
      name: 'seen',
      handles: ['Seen'],
      init(tx) {
        tx.exec('CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)');
      },
      handle(events, tx) {
        for (const e of events) tx.prepare('INSERT INTO seen (id) VALUES (?)').run(e.id);
      },
    });
    const runner = await startSqliteProjections(store, [projection], { idleCheckMs: 10 });
    const rows = () => (db.prepare('SELECT COUNT(*) AS n FROM seen').get() as { n: number }).n;
    const saved = () =>
      (db.prepare("SELECT position FROM factline_projections WHERE name = 'seen'").get() as { position: number })
        .position;
    try {
      await runner.waitFor('seen', (await store.append('s-1', [{ type: 'Seen', data: {} }])).position);
      const { position } = await writer.append('s-2', [{ type: 'Seen', data: {} }]);
      // Begun before the runner's next turn, its snapshot holding s-2 (a read takes it).
      db.exec('BEGIN');
      db.prepare('SELECT COUNT(*) FROM factline_events').get();
      const openedAt = Date.now();
      await waitUntil(() => Date.now() - openedAt >= 200, 'several idle checks while the transaction is open');
      assert.equal(runner.status('seen').checkpoint < position, true, 'nothing applied inside it');
      db.exec('ROLLBACK');
      await runner.waitFor('seen', position, { timeoutMs: 10_000 });
      assert.equal(rows(), 2);
      assert.equal(saved(), position, 'the checkpoint saved, not rolled back');
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
      await runner.stop();
      await writer.close();
      await store.close();
    }
  });
});

describe('sqlite projections: a handler that throws', () => {
  it('its error reaches onError and lastError as it was thrown: its class and its stack, not a storage error', async () => {
    class PricingError extends Error {
      override name = 'PricingError';
    }
    const store = getSqliteEventStore({ path: file() });
    const told: unknown[] = [];
    const projection = defineProjection<Database>({
      name: 'priced',
      handles: ['Priced'],
      handle: function priceLines() {
        throw new PricingError('no price for sku X');
      },
    });
    const runner = await startSqliteProjections(store, [projection], {
      maxAttempts: 1,
      initialBackoffMs: 1,
      onError: (_name, error) => told.push(error),
    });
    try {
      await store.append('p-1', [{ type: 'Priced', data: {} }]);
      await waitUntil(() => runner.status('priced').state === 'failed', 'the projection failed');
      assert.ok(told[0] instanceof PricingError, `told ${String(told[0])}`);
      assert.match(
        runner.status('priced').lastError?.stack ?? '',
        /^PricingError: no price for sku X\n\s+at (Object\.)?priceLines/,
      );
    } finally {
      await runner.stop();
      await store.close();
    }
  });
});

describe("sqlite projections: onFailure 'park' while another connection holds the write lock", () => {
  it('the batch waits for the lock and applies: nothing is parked for a busy file', async () => {
    const path = file();
    const store = getSqliteEventStore({ path, busyTimeoutMs: 5 });
    const { position } = await store.append('s-1', [{ type: 'Seen', data: {} }]);
    store.database.exec('CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY)');
    const projection = defineProjection<Database>({
      name: 'seen',
      handles: ['Seen'],
      onFailure: 'park',
      handle(events, tx) {
        for (const e of events) tx.prepare('INSERT INTO seen (position) VALUES (?)').run(e.position);
      },
    });
    const backend = getSqliteProjectionBackend(store);
    // Another process (a migration, a long batch) holds the write lock over more tries than maxAttempts.
    const other = new Sqlite(path);
    other.exec('BEGIN IMMEDIATE');
    let busy = 0;
    const runner = createProjectionRunner(backend, [projection], {
      maxAttempts: 3,
      initialBackoffMs: 1,
      maxBackoffMs: 2,
      onError: () => {
        if (++busy === 5) other.exec('COMMIT');
      },
    });
    await runner.start();
    try {
      await runner.waitFor('seen', position);
      const rows = (store.database.prepare('SELECT COUNT(*) AS n FROM seen').get() as { n: number }).n;
      const parked = await runner.parked('seen');
      assert.deepEqual(
        { rows, parked: parked.length },
        { rows: 1, parked: 0 },
        `parked: ${parked[0]?.error.split('\n')[0]}`,
      );
      assert.equal(busy, 5, 'every busy try reported');
    } finally {
      await runner.stop();
      other.close();
      await store.close();
    }
  });
});
