import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { messageFromJson } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { getSqliteTransport, openSqliteDatabase } from '../index.ts';
import { migrate } from '../migrations.ts';
import { CLAIM_BY_KEYS_SQL, CLAIM_SQL, claimWindow, prepareClaim } from './sqlite-claim.ts';
import { prepareQueueStatements } from './sqlite-queue-statements.ts';
import { transportMigrations } from './sqlite-transport-migrations.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-claim-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db-${++n}.db`);

/**
 * `db` with every statement it prepares counted: for each run, the rows its
 * LIMITs let it read (`window`: a prefix of the group; `keys`: keys walked).
 */
function countingDatabase(db: Database): { db: Database; looked: () => number } {
  let looked = 0;
  const count = (params: unknown) => {
    const { window, keys } = (params ?? {}) as { window?: number; keys?: number };
    looked += (window ?? 0) + (keys ?? 0);
  };
  const wrapped = new Proxy(db, {
    get(target, property) {
      if (property === 'prepare') {
        return (sql: string) => {
          const statement = target.prepare(sql);
          return new Proxy(statement, {
            get(inner, name) {
              const value = Reflect.get(inner, name, inner);
              if (typeof value !== 'function') return value;
              if (name !== 'all' && name !== 'get' && name !== 'run') return value.bind(inner);
              return (...args: unknown[]) => {
                count(args[0]);
                return value.apply(inner, args);
              };
            },
          });
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { db: wrapped, looked: () => looked };
}

describe('sqlite transport: the claim behind a hot key', () => {
  it("a competing claim finds another key's message behind a held key's backlog, reading a bounded number of rows", async () => {
    const transport = getSqliteTransport({ path: file(), synchronous: 'normal' });
    try {
      await transport.declareSubscription('orders', 'billing');
      for (let i = 0; i < 5_000; i += 1_000) {
        await transport.publish(
          'orders',
          Array.from({ length: 1_000 }, (_, j) =>
            createMessage({ type: 'OrderPlaced', key: 'hot', data: { i: i + j } }),
          ),
        );
      }
      const holder = transport.subscribe('orders', 'billing', { visibilityTimeoutMs: 60_000 });
      const held = await holder.receive(8, 0, new AbortController().signal);
      assert.deepEqual(
        held.map((d) => d.message.data),
        Array.from({ length: 8 }, (_, i) => ({ i })),
      );
      const other = createMessage({ type: 'OrderPlaced', key: 'other', data: {} });
      await transport.publish('orders', [other]);

      const counting = countingDatabase(transport.database);
      const claim = prepareClaim(counting.db, Date.now);
      const claimed = claim.immediate('orders', 'billing', 8, 60_000);
      assert.deepEqual(
        claimed.map((row) => messageFromJson(row.message).id),
        [other.id],
      );
      assert.ok(
        counting.looked() <= 4 * claimWindow(8),
        `the claim's statements could read ${counting.looked()} rows of a group of 5,001 (at most ${4 * claimWindow(8)} expected)`,
      );
      await holder.close();
    } finally {
      await transport.close();
    }
  });
});

/** Rows of group ('t', 'g') as given: a key and whether the row is visible at 1000. */
function insertRows(db: Database, rows: readonly { key: string; visible: boolean }[]): void {
  const insert = db.prepare(
    `INSERT INTO factline_transport_messages (topic, group_name, message_id, message, key, visible_at)
     VALUES ('t', 'g', ?, '{}', ?, ?)`,
  );
  db.transaction(() => {
    for (const [i, row] of rows.entries()) insert.run(`m${i}`, row.key, row.visible ? 0 : 2_000);
  })();
}

describe('sqlite transport: the claim by keys', () => {
  it('hands out the rows the claim by prefix hands out over the whole group, whatever the keys and visibility', async () => {
    const transport = getSqliteTransport({ path: file(), synchronous: 'normal' });
    try {
      const db = transport.database;
      const byPrefix = db.prepare(CLAIM_SQL);
      const byKeys = db.prepare(CLAIM_BY_KEYS_SQL);
      // A fixed sequence (a linear congruential generator): a failure shows the same case again.
      let state = 7;
      const random = (below: number) => {
        state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
        return state % below;
      };
      for (let trial = 0; trial < 200; trial++) {
        db.exec('DELETE FROM factline_transport_messages');
        const keys = 1 + random(6);
        const rows = Array.from({ length: random(40) }, () => ({ key: `k${random(keys)}`, visible: random(3) > 0 }));
        insertRows(db, rows);
        const keysInGroup = new Set(rows.map((row) => row.key)).size;
        for (const max of [1, 3, 8]) {
          const params = { topic: 't', group: 'g', at: 1_000, max };
          const expected = (byPrefix.all({ ...params, window: 1_000 }) as { seq: number }[]).map((row) => row.seq);
          const found = (byKeys.all({ ...params, keys: keysInGroup }) as { seq: number | null }[]).map(
            (row) => row.seq,
          );
          assert.deepEqual(found, expected, `trial ${trial}, max ${max}`);
          // Walking fewer keys than the group has: the rows are not the claim's, and a last row of nulls says so.
          if (keysInGroup > 0) {
            const short = byKeys.all({ ...params, keys: keysInGroup - 1 }) as { seq: number | null }[];
            assert.equal(short.at(-1)?.seq, null, `trial ${trial}, max ${max}: no last row of nulls`);
          }
        }
      }
    } finally {
      await transport.close();
    }
  });

  it('a group with more keys than the window had rows: the claim looks further by prefix', async () => {
    const transport = getSqliteTransport({ path: file() });
    try {
      // 200 keys, each first row scheduled later, then one row due: more keys than a claim of 1's window (64).
      insertRows(transport.database, [
        ...Array.from({ length: 200 }, (_, i) => ({ key: `later-${i}`, visible: false })),
        { key: 'due', visible: true },
      ]);
      const counting = countingDatabase(transport.database);
      const claimed = prepareClaim(counting.db, () => 1_000).immediate('t', 'g', 1, 60_000);
      assert.deepEqual(
        claimed.map((row) => row.seq),
        [201],
      );
      // The window of 64, the keys walk that stopped past 64 keys, then the window of 512.
      assert.ok(counting.looked() >= 64 + 64 + 512, `looked at ${counting.looked()}`);
    } finally {
      await transport.close();
    }
  });

  it('migration 4 on a file written by version 3 adds the key index; the waiting messages are kept', async () => {
    const path = file();
    const db = openSqliteDatabase(path);
    migrate(db, 'transport', transportMigrations.slice(0, 3));
    insertRows(db, [
      { key: 'a', visible: true },
      { key: 'b', visible: true },
    ]);
    db.close();
    for (let open = 0; open < 2; open++) {
      const transport = getSqliteTransport({ path });
      try {
        const indexes = transport.database
          .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'factline_transport_messages'")
          .all() as { name: string }[];
        assert.ok(
          indexes.some((index) => index.name === 'factline_transport_messages_key'),
          JSON.stringify(indexes),
        );
        assert.equal(
          (transport.database.prepare('SELECT COUNT(*) AS n FROM factline_transport_messages').get() as { n: number })
            .n,
          2,
        );
      } finally {
        await transport.close();
      }
    }
  });
});

describe('sqlite transport: when a waiting receive looks again', () => {
  it("the earliest first row of a key to become visible, walking keys: not a row behind its key's first, nor the key's backlog", async () => {
    const transport = getSqliteTransport({ path: file() });
    try {
      const db = transport.database;
      // 'hot': its first row in flight until 60,000, a row due at 1,500 behind it, then a backlog.
      const insert = db.prepare(
        `INSERT INTO factline_transport_messages (topic, group_name, message_id, message, key, visible_at)
         VALUES ('t', 'g', ?, '{}', ?, ?)`,
      );
      insert.run('m0', 'hot', 60_000);
      insert.run('m1', 'hot', 1_500);
      for (let i = 2; i < 50; i++) insert.run(`m${i}`, 'hot', 0);
      insert.run('m50', 'later', 90_000);
      const { nextDue } = prepareQueueStatements(db);
      assert.equal(nextDue.get({ topic: 't', group: 'g', at: 1_000 })?.next, 60_000);
      const plan = (
        db.prepare(`EXPLAIN QUERY PLAN ${nextDue.source}`).all({ topic: 't', group: 'g', at: 1_000 }) as {
          detail: string;
        }[]
      ).map((step) => step.detail);
      assert.ok(!plan.some((step) => step.includes('factline_transport_messages_queue')), plan.join('\n'));
    } finally {
      await transport.close();
    }
  });
});
