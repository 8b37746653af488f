import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defineProjection, type RecordedEvent, type ValidationError } from '@factline/core';
import { schemaStoreFixtures } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteEventStore, getSqliteOutbox, startSqliteProjections } from './index.ts';

const { suiteSchemas } = schemaStoreFixtures;
const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-schema-paths-'));
let files = 0;
const v1 = { orderId: 'o-1', total: 30 };
const v3 = { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } };

/** A projection keeping `[schemaVersion, data]` of each event in table `name`. */
const seen = (name: string) =>
  defineProjection<Database>({
    name,
    handles: ['OrderPlaced'],
    init: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS ${name} (position INTEGER PRIMARY KEY, event TEXT)`);
    },
    handle: (events: readonly RecordedEvent[], db) => {
      const insert = db.prepare(`INSERT INTO ${name} (position, event) VALUES (?, ?)`);
      for (const e of events) insert.run(e.position, JSON.stringify([e.schemaVersion, e.data]));
    },
  });
const rows = (db: Database, table: string) =>
  db
    .prepare<[], { event: string }>(`SELECT event FROM ${table} ORDER BY position`)
    .all()
    .map((r) => JSON.parse(r.event));

describe('SQLite paths with a schema registry', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('an inline projection sees the stamped events of a later append', async () => {
    const path = join(dir, `s-${++files}.db`);
    const store = getSqliteEventStore({ path, schemas: suiteSchemas(), inlineProjections: [seen('inline_seen')] });
    try {
      await store.append('order-1', [{ type: 'OrderPlaced', data: { ...v3, extra: true } }]);
      assert.deepEqual(rows(store.database, 'inline_seen'), [[3, v3]]);
    } finally {
      await store.close();
    }
  });

  it('async projections on the store read v1 events as v3', async () => {
    const path = join(dir, `s-${++files}.db`);
    const raw = getSqliteEventStore({ path });
    const store = getSqliteEventStore({ path, schemas: suiteSchemas() });
    await raw.append('order-1', [{ type: 'OrderPlaced', data: v1 }]);
    const runner = await startSqliteProjections(store, [seen('async_seen')], { lease: false, idleCheckMs: 5 });
    try {
      await runner.waitFor('async_seen', 1);
      assert.deepEqual(rows(store.database, 'async_seen'), [[3, v3]]);
    } finally {
      await runner.stop();
      await raw.close();
      await store.close();
    }
  });

  it('the outbox validates and stamps messages; an invalid enqueue writes nothing', async () => {
    const store = getSqliteEventStore({ path: join(dir, `s-${++files}.db`) });
    const schemas = suiteSchemas();
    const outbox = getSqliteOutbox({ database: store.database, schemas });
    try {
      const event = (data: unknown) => ({ type: 'OrderPlaced', data, headers: { 'factline-stream-id': 'order-1' } });
      const enqueue = (data: unknown) =>
        store.database.transaction(() => outbox.enqueue(store.database, 'orders', [event(data)]))();
      assert.throws(
        () => enqueue({ orderId: 1 }),
        (error: ValidationError) =>
          error.issues.map((i) => i.path).join() === 'messages[0].data.orderId,messages[0].data.amount',
      );
      assert.equal(outbox.pending(), 0);
      const [message] = enqueue(v3);
      assert.equal(message?.headers['factline-schema-version'], '3');
      assert.equal(outbox.pending(), 1);
    } finally {
      await store.close();
    }
  });
});
