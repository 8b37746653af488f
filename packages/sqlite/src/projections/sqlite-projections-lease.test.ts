import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defineProjection, isValidationError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { createLeaseTestTables, pidRuns, spawnFixture } from '../outbox/fixtures/lease-fixtures.ts';
import { getSqliteEventStore, type SqliteEventStore } from '../store/sqlite-event-store.ts';
import { projectionLeaseName, startSqliteProjections } from './sqlite-projections.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-projection-lease-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `projections-${++files}.db`);

/** One row per applied event, with the runner that applied it; nothing de-duplicates. */
function recorder(name: string, runner: string) {
  return defineProjection<Database>({
    name,
    handles: ['Counted'],
    init: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS applied (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        position INTEGER NOT NULL,
        runner TEXT NOT NULL
      )`);
    },
    handle: (events, db) => {
      const insert = db.prepare('INSERT INTO applied (position, runner) VALUES (?, ?)');
      for (const event of events) insert.run(event.position, runner);
    },
  });
}

/** Appends `n` 'Counted' events (and some others), concurrently: the store commits them together. */
const appendCounted = async (store: SqliteEventStore, n: number) => {
  const appends = [];
  for (let i = 0; i < n; i += 10) {
    const events = Array.from({ length: Math.min(10, n - i) }, (_, j) => ({ type: 'Counted', data: { n: i + j } }));
    appends.push(store.append(`s-${i % 7}`, [...events, { type: 'Other', data: {} }]));
  }
  return Math.max(...(await Promise.all(appends)).map((result) => result.position));
};
const countedPositions = async (store: SqliteEventStore) => {
  const positions: number[] = [];
  for await (const event of store.readAll({ types: ['Counted'] })) positions.push(event.position);
  return positions;
};
const applied = (db: Database) =>
  db.prepare('SELECT position, runner FROM applied ORDER BY seq').all() as { position: number; runner: string }[];
const savedCheckpoint = (db: Database, name: string) =>
  (db.prepare('SELECT position FROM factline_projections WHERE name = ?').get(name) as { position: number } | undefined)
    ?.position ?? 0;

describe('sqlite projections: one active runner per projection across processes', () => {
  it('two runners on one file: one runs the projection, the other stands by; stop hands over at the next check', async () => {
    const path = file();
    const storeA = getSqliteEventStore({ path });
    const storeB = getSqliteEventStore({ path });
    const changes: string[] = [];
    const options = { leaseTtlMs: 5000, leaseCheckMs: 50, idleCheckMs: 50 };
    const a = await startSqliteProjections(storeA, [recorder('counted', 'a')], {
      ...options,
      onLeaseChange: (name, lease) => changes.push(`a ${name} ${lease}`),
    });
    const b = await startSqliteProjections(storeB, [recorder('counted', 'b')], {
      ...options,
      onLeaseChange: (name, lease) => changes.push(`b ${name} ${lease}`),
    });
    try {
      assert.equal(a.status('counted').lease, 'held');
      assert.equal(b.status('counted').lease, 'standby');
      assert.equal(b.status('counted').state, 'stopped');
      const first = await appendCounted(storeA, 50);
      await a.waitFor('counted', first);
      // The stand-by's waitFor follows the saved checkpoint; a rebuild belongs to the holder.
      await b.waitFor('counted', first, { timeoutMs: 5000 });
      await assert.rejects(b.rebuild('counted'), isValidationError);
      await waitUntil(() => b.status('counted').checkpoint === first, 'the stand-by view at a check');
      assert.equal(b.status('counted').lag, 0);

      const stopping = Date.now();
      await a.stop();
      assert.equal(a.status('counted').lease, 'standby');
      await waitUntil(() => b.status('counted').lease === 'held', 'the take-over', 4000);
      assert.ok(Date.now() - stopping < 4000, 'taken over only at the expiry');
      const second = await appendCounted(storeB, 30);
      await b.waitFor('counted', second);
      assert.deepEqual(
        applied(storeA.database).map((r) => r.position),
        await countedPositions(storeA),
      );
      assert.deepEqual(pidRuns(applied(storeA.database).map((r) => ({ pid: r.runner === 'a' ? 1 : 2 }))), [1, 2]);
      assert.deepEqual(changes, ['a counted held', 'a counted standby', 'b counted held']);
    } finally {
      await a.stop();
      await b.stop();
      await storeA.close();
      await storeB.close();
    }
  });

  it('a holder that cannot renew its lease stops applying; it takes the projection back once the lease is free', async () => {
    const path = file();
    const store = getSqliteEventStore({ path });
    const changes: string[] = [];
    const runner = await startSqliteProjections(store, [recorder('counted', 'a')], {
      leaseTtlMs: 400,
      leaseCheckMs: 50,
      idleCheckMs: 50,
      onLeaseChange: (_, lease) => changes.push(lease),
    });
    const db = store.database;
    try {
      const first = await appendCounted(store, 20);
      await runner.waitFor('counted', first);
      // Another holder takes the row (as one would after an expiry): the next renewal fails.
      db.prepare('UPDATE factline_leases SET holder = ?, expires_at = ? WHERE name = ?').run(
        'intruder',
        Date.now() + 60_000,
        projectionLeaseName('counted'),
      );
      await waitUntil(() => runner.status('counted').lease === 'standby', 'the lease given up');
      assert.equal(runner.status('counted').state, 'stopped');
      const second = await appendCounted(store, 20);
      // A check has run since the append (the stand-by view saw the new head), and nothing was applied.
      await waitUntil(() => runner.status('counted').head >= second, 'a stand-by check after the append');
      assert.equal(savedCheckpoint(db, 'counted'), first);
      assert.equal(applied(db).length, 20);

      db.prepare('DELETE FROM factline_leases WHERE name = ?').run(projectionLeaseName('counted'));
      await waitUntil(() => runner.status('counted').lease === 'held', 'the lease taken back');
      await runner.waitFor('counted', second);
      assert.deepEqual(
        applied(db).map((r) => r.position),
        await countedPositions(store),
      );
      assert.deepEqual(changes, ['held', 'standby', 'held']);
    } finally {
      await runner.stop();
      await store.close();
    }
  });

  it('a failure of the lease loop (an init that throws on takeover) reaches onError and the logger', async () => {
    const store = getSqliteEventStore({ path: file() });
    const timings = { leaseTtlMs: 200, leaseCheckMs: 20 };
    const holder = await startSqliteProjections(store, [recorder('counted', 'a')], timings);
    const failing = defineProjection<Database>({
      ...recorder('counted', 'b'),
      init: () => {
        throw new Error('init refused');
      },
    });
    const told: unknown[] = [];
    const warned: { obj: object; msg: string }[] = [];
    const quiet = () => {};
    const logger = {
      debug: quiet,
      info: quiet,
      warn: (obj: object | string, msg?: string) => {
        warned.push(typeof obj === 'string' ? { obj: {}, msg: obj } : { obj, msg: msg ?? '' });
      },
      error: quiet,
    };
    const standby = await startSqliteProjections(store, [failing], {
      ...timings,
      logger,
      onError: (_name, error) => void told.push(error),
    });
    try {
      await holder.stop();
      await waitUntil(() => told.length > 0, 'onError told of the takeover that failed');
      await waitUntil(() => warned.length > 0, 'the logger told too');
      assert.match(String(told[0]), /init refused/);
      assert.match(warned[0]?.msg ?? '', /counted/);
      assert.match(String((warned[0]?.obj as { err?: unknown } | undefined)?.err), /init refused/);
    } finally {
      await standby.stop();
      await store.close();
    }
  });

  it('leaseCheckMs must be below leaseTtlMs; lease: false runs without a lease', async () => {
    const store = getSqliteEventStore({ path: file() });
    try {
      await assert.rejects(
        startSqliteProjections(store, [recorder('counted', 'a')], { leaseTtlMs: 300, leaseCheckMs: 300 }),
        isValidationError,
      );
      const runner = await startSqliteProjections(store, [recorder('counted', 'a')], { lease: false });
      try {
        assert.equal(runner.status('counted').lease, 'held');
        const position = await appendCounted(store, 10);
        await runner.waitFor('counted', position);
        assert.deepEqual(
          runner.status().map((s) => s.lease),
          ['held'],
        );
        assert.equal(
          (
            store.database.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'factline_leases'").get() as {
              n: number;
            }
          ).n,
          0,
        );
      } finally {
        await runner.stop();
      }
    } finally {
      await store.close();
    }
  });

  it('a projection or runner option refused writes nothing to the file first, leased or not', async () => {
    const store = getSqliteEventStore({ path: file() });
    const tables = () =>
      store.database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    const counted = recorder('counted', 'a');
    try {
      const before = tables();
      for (const [what, projections, options] of [
        ['an onFailure not known', [{ ...counted, onFailure: 'skip' as never }], {}],
        ['a name used twice', [counted, counted], { lease: false }],
        ['maxBatchSize below batchSize', [counted], { batchSize: 10, maxBatchSize: 5 }],
        ['maxBackoffMs below initialBackoffMs', [counted], { initialBackoffMs: 5000, maxBackoffMs: 10 }],
        [
          'maxBackoffMs below initialBackoffMs, not leased',
          [counted],
          { lease: false, initialBackoffMs: 500, maxBackoffMs: 10 },
        ],
      ] as const) {
        const refused = await startSqliteProjections(store, projections, options).then(
          async (runner) => {
            await runner.stop();
            return new Error(`${what} was taken`);
          },
          (error: unknown) => error,
        );
        assert.deepEqual(tables(), before, `refusing ${what}, nothing is written to the file`);
        assert.ok(isValidationError(refused), String(refused));
      }
    } finally {
      await store.close();
    }
  });

  it('two processes: after SIGKILL of the holder the other takes over; a SQL read model gets every event once, a relay publishes one process at a time', async (t) => {
    const path = file();
    const store = getSqliteEventStore({ path, busyTimeoutMs: 10_000 });
    const db = store.database;
    createLeaseTestTables(db);
    const ttlMs = 500;
    const checkMs = 100;
    const total = 1000;
    const script = new URL('./fixtures/lease-child.ts', import.meta.url).pathname;
    const args = [path, `${ttlMs}`, `${checkMs}`, '10'];
    const names = ['lease_counter', 'lease_relay'];
    const first = spawnFixture(script, args);
    let second: ReturnType<typeof spawnFixture> | undefined;
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    try {
      await first.line((l) => l.ready === true, 'the first process started');
      assert.deepEqual(first.lines.find((l) => l.ready)?.leases, { lease_counter: 'held', lease_relay: 'held' });
      second = spawnFixture(script, args);
      const standing = second;
      await standing.line((l) => l.ready === true, 'the second process started');
      assert.deepEqual(standing.lines.find((l) => l.ready)?.leases, {
        lease_counter: 'standby',
        lease_relay: 'standby',
      });

      const head = await appendCounted(store, total);
      await waitUntil(
        () =>
          count('SELECT COUNT(*) AS n FROM lease_applied') >= 150 &&
          count('SELECT COUNT(*) AS n FROM lease_published') >= 50,
        'the holder applying and publishing',
        20_000,
      );
      first.child.kill('SIGKILL');
      const killedAt = Date.now();
      assert.equal((await first.exited).signal, 'SIGKILL');
      const appliedAtKill = count('SELECT COUNT(*) AS n FROM lease_applied');
      const publishedAtKill = count('SELECT COUNT(DISTINCT message_id) AS n FROM lease_published');
      assert.ok(
        appliedAtKill < total && publishedAtKill < total,
        `the holder finished before the kill (${appliedAtKill}, ${publishedAtKill})`,
      );

      for (const name of names) {
        const takeover = await standing.line((l) => l.projection === name && l.lease === 'held', `${name} taken over`);
        const after = (takeover.at as number) - killedAt;
        t.diagnostic(
          `${name}: killed at ${name === 'lease_counter' ? appliedAtKill : publishedAtKill} of ${total}; taken over ${after} ms after the kill`,
        );
        assert.ok(after <= ttlMs + checkMs + 400, `${name} taken over ${after} ms after the kill`);
      }
      await waitUntil(
        () => names.every((name) => savedCheckpoint(db, name) >= head),
        'both projections at the head',
        20_000,
      );

      const log = await countedPositions(store);
      assert.equal(log.length, total);
      // The SQL read model: every event exactly once, applied by the holder, then by the survivor.
      const rows = db.prepare('SELECT position, pid FROM lease_applied ORDER BY seq').all() as {
        position: number;
        pid: number;
      }[];
      assert.deepEqual(
        rows.map((r) => r.position),
        log,
      );
      assert.deepEqual(pidRuns(rows), [first.pid, standing.pid]);
      // The relay: one publisher at a time, every event published at least once and applied once.
      const published = db.prepare('SELECT message_id, pid FROM lease_published ORDER BY seq').all() as {
        message_id: string;
        pid: number;
      }[];
      assert.deepEqual(pidRuns(published), [first.pid, standing.pid]);
      assert.equal(new Set(published.map((r) => r.message_id)).size, total);
      assert.equal(count('SELECT COUNT(*) AS n FROM lease_effects'), total);
      assert.equal(count('SELECT COUNT(DISTINCT message_id) AS n FROM lease_effects'), total);

      standing.child.kill('SIGTERM');
      assert.equal((await standing.exited).code, 0, standing.output());
      assert.equal(count('SELECT COUNT(*) AS n FROM factline_leases'), 0, 'the leases were not given up');
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      if (second && second.child.exitCode === null && second.child.signalCode === null) second.child.kill('SIGKILL');
      await store.close();
    }
  });
});
