import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isValidationError, type Transport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { openSqliteDatabase } from '../store/sqlite-event-store.ts';
import { createLeaseTestTables, pidRuns, recordingTransport, spawnFixture } from './fixtures/lease-fixtures.ts';
import { getSqliteOutbox, type SqliteOutbox, startSqliteOutboxRelay } from './sqlite-outbox.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-outbox-lease-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `outbox-${++files}.db`);

const enqueue = (db: Database, outbox: SqliteOutbox, count: number, from = 0) => {
  for (let i = from; i < from + count; i += 10) {
    db.transaction(() => {
      outbox.enqueue(
        db,
        'orders',
        Array.from({ length: Math.min(10, from + count - i) }, (_, j) => ({
          type: 'Step',
          data: { n: i + j },
          key: `k-${(i + j) % 4}`,
        })),
      );
    })();
  }
};
const count = (db: Database, sql: string) => (db.prepare(sql).get() as { n: number }).n;
const leaseRow = (db: Database) =>
  db.prepare("SELECT holder, expires_at, acquired_at FROM factline_leases WHERE name = 'outbox'").get();

describe('sqlite outbox relay: one active relay per file', () => {
  it('two relays on one file: one publishes, the other stands by; stop hands over at the next check', async () => {
    const path = file();
    const dbA = openSqliteDatabase(path, {});
    const dbB = openSqliteDatabase(path, {});
    createLeaseTestTables(dbA);
    const outboxA = getSqliteOutbox({ database: dbA });
    const outboxB = getSqliteOutbox({ database: dbB });
    const published = { a: 0, b: 0 };
    const changes = { a: [] as string[], b: [] as string[] };
    const counting = (name: 'a' | 'b', db: Database): Transport => {
      const inner = recordingTransport(db, 0);
      return {
        ...inner,
        async publish(topic, messages, publishOptions) {
          published[name] += messages.length;
          await inner.publish(topic, messages, publishOptions);
        },
      };
    };
    const options = { pollMs: 10, leaseTtlMs: 5000, leaseCheckMs: 50, batchSize: 7 };
    const a = startSqliteOutboxRelay(outboxA, counting('a', dbA), {
      ...options,
      onLeaseChange: (lease) => changes.a.push(lease),
    });
    const b = startSqliteOutboxRelay(outboxB, counting('b', dbB), {
      ...options,
      onLeaseChange: (lease) => changes.b.push(lease),
    });
    try {
      await Promise.all([a.ready(), b.ready()]);
      assert.equal(a.stats().lease, 'held', 'the first relay takes the lease at its first check');
      assert.equal(b.stats().lease, 'standby');
      enqueue(dbA, outboxA, 40);
      await waitUntil(() => count(dbA, 'SELECT COUNT(*) AS n FROM lease_effects') === 40, 'the first 40 applied');
      assert.equal(published.b, 0, 'the stand-by published');
      assert.equal(b.stats().lease, 'standby');

      // A stopped holder deletes its row: the stand-by takes over at its next check, long before the TTL.
      const stopping = Date.now();
      await a.stop();
      assert.equal(leaseRow(dbA), undefined);
      assert.equal(a.stats().lease, 'standby');
      await waitUntil(() => b.stats().lease === 'held', 'the take-over', 4000);
      const tookOver = Date.now() - stopping;
      assert.ok(tookOver < 4000, `took over after ${tookOver} ms`);
      const publishedByA = published.a;
      enqueue(dbA, outboxA, 30, 40);
      await waitUntil(() => count(dbA, 'SELECT COUNT(*) AS n FROM lease_effects') === 70, 'the next 30 applied');
      assert.equal(published.a, publishedByA);
      assert.equal(published.b, 30);
      assert.deepEqual(changes, { a: ['held', 'standby'], b: ['held'] });
      assert.equal(count(dbA, 'SELECT COUNT(DISTINCT message_id) AS n FROM lease_published'), 70);
    } finally {
      await a.stop();
      await b.stop();
      dbA.close();
      dbB.close();
    }
  });

  it('leaseCheckMs must be below leaseTtlMs; lease: false publishes without a lease row', async () => {
    const db = openSqliteDatabase(file(), {});
    createLeaseTestTables(db);
    const outbox = getSqliteOutbox({ database: db });
    const transport = recordingTransport(db, 0);
    try {
      assert.throws(
        () => startSqliteOutboxRelay(outbox, transport, { leaseTtlMs: 500, leaseCheckMs: 500 }),
        isValidationError,
      );
      assert.throws(() => startSqliteOutboxRelay(outbox, transport, { leaseCheckMs: 6000 }), isValidationError);
      const relay = startSqliteOutboxRelay(outbox, transport, { lease: false, pollMs: 10 });
      try {
        assert.equal(relay.stats().lease, 'held');
        enqueue(db, outbox, 5);
        await waitUntil(() => count(db, 'SELECT COUNT(*) AS n FROM lease_effects') === 5, 'five applied');
        assert.equal(
          count(db, "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'factline_leases'"),
          0,
          'a lease table was created',
        );
      } finally {
        await relay.stop();
      }
    } finally {
      db.close();
    }
  });

  it('two processes: one publishes at a time; after SIGKILL of the holder the other takes over and every message is applied once', async (t) => {
    const path = file();
    const db = openSqliteDatabase(path, { busyTimeoutMs: 10_000 });
    createLeaseTestTables(db);
    const outbox = getSqliteOutbox({ database: db });
    const ttlMs = 500;
    const checkMs = 100;
    const total = 400;
    const script = new URL('./fixtures/relay-child.ts', import.meta.url).pathname;
    // Batches of 5, each publish taking 3 ms or more: the holder is still at it when it is killed.
    const args = [path, `${ttlMs}`, `${checkMs}`, '5', '3'];
    const first = spawnFixture(script, args);
    let second: ReturnType<typeof spawnFixture> | undefined;
    try {
      await first.line((l) => l.ready === true && l.lease === 'held', 'the first relay holding the lease');
      second = spawnFixture(script, args);
      const standing = second;
      await standing.line((l) => l.ready === true, 'the second relay started');
      assert.equal(standing.lines.find((l) => l.ready)?.lease, 'standby');

      enqueue(db, outbox, total);
      await waitUntil(
        () => count(db, 'SELECT COUNT(*) AS n FROM lease_published') >= 100,
        'the holder publishing',
        20_000,
      );
      first.child.kill('SIGKILL');
      const killedAt = Date.now();
      assert.equal((await first.exited).signal, 'SIGKILL');
      const publishedAtKill = count(db, 'SELECT COUNT(DISTINCT message_id) AS n FROM lease_published');
      assert.ok(publishedAtKill < total, `the holder finished before the kill (${publishedAtKill})`);

      const takeover = await standing.line((l) => l.lease === 'held', 'the take-over');
      const after = (takeover.at as number) - killedAt;
      // Expiry (ttl after the last renewal, at most at the kill) plus one check, plus scheduling slack.
      t.diagnostic(`killed after ${publishedAtKill} of ${total}; taken over ${after} ms after the kill`);
      assert.ok(after <= ttlMs + checkMs + 400, `took over ${after} ms after the kill`);
      await waitUntil(() => outbox.pending() === 0, 'the outbox emptied by the survivor', 20_000);

      const rows = db.prepare('SELECT message_id, pid FROM lease_published ORDER BY seq').all() as {
        message_id: string;
        pid: number;
      }[];
      // Never two publishers interleaving: the killed holder's publishes, then the survivor's.
      assert.deepEqual(pidRuns(rows), [first.pid, standing.pid]);
      const ids = new Set(rows.map((r) => r.message_id));
      assert.equal(ids.size, total, 'a message never published');
      // At least once (the batch in flight at the kill may come again), applied once through the inbox.
      assert.equal(count(db, 'SELECT COUNT(*) AS n FROM lease_effects'), total);
      assert.equal(count(db, 'SELECT COUNT(DISTINCT message_id) AS n FROM lease_effects'), total);

      // A stop gives the lease up.
      standing.child.kill('SIGTERM');
      assert.equal((await standing.exited).code, 0, standing.output());
      assert.equal(leaseRow(db), undefined);
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      if (second && second.child.exitCode === null && second.child.signalCode === null) second.child.kill('SIGKILL');
      db.close();
    }
  });
});
