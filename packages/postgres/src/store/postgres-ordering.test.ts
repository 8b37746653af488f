import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ConcurrencyError, type RecordedEvent, StreamDeletedError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { quoteSchema } from '../migrations.ts';
import { getPostgresEventStore, type PostgresEventStore } from './postgres-event-store.ts';
import { appendLockKey } from './schema.ts';

const skip = await postgresUnavailable();
const schema = testSchema('ordering');
const s = quoteSchema(schema);

async function collect(store: PostgresEventStore, afterPosition: number): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const event of store.readAll({ after: afterPosition })) events.push(event);
  return events;
}

describe('PostgreSQL global order', { skip }, () => {
  let store: PostgresEventStore;
  const others: PostgresEventStore[] = [];
  const clients: pg.Client[] = [];

  const client = async () => {
    const c = new pg.Client({ connectionString: postgresUrl });
    await c.connect();
    clients.push(c);
    return c;
  };
  const openStore = async () => {
    const s = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
    others.push(s);
    return s;
  };

  /** True while some connection waits for this schema's append lock. */
  const appendLockWaiters = async (observer: pg.Client) => {
    const { rows } = await observer.query<{ waiting: number }>(
      `SELECT count(*)::int AS waiting FROM pg_locks
       WHERE locktype = 'advisory' AND NOT granted AND classid = 1178682196
         AND objid = ('"${schema}".events'::regclass)::oid`,
    );
    return (rows[0]?.waiting ?? 0) > 0;
  };

  before(async () => {
    store = await openStore();
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.end()));
    await Promise.allSettled(others.map((s) => s.close()));
    await dropSchema(schema);
  });

  it('a reader never delivers a later commit before an earlier, still open append', async () => {
    const head = await store.headPosition();
    const observer = await client();
    // Transaction 1 appends (through the store's own append function) and stays open.
    const tx1 = await client();
    const firstId = randomUUID();
    await tx1.query('BEGIN');
    await tx1.query(
      `SELECT * FROM "${schema}".append_events(ARRAY['ooo-1'], ARRAY['ooo'], ARRAY[0]::bigint[], ARRAY[1],
         ARRAY[$1], ARRAY['First'], ARRAY[1], ARRAY['{}'], ARRAY['{}'], now())`,
      [firstId],
    );
    // Transaction 2 appends and would commit: it queues behind transaction 1.
    let secondDone = false;
    const second = store.append('ooo-2', [{ type: 'Second', data: {} }]).then((result) => {
      secondDone = true;
      return result;
    });
    await waitUntil(() => appendLockWaiters(observer), 'the second append to wait for the append lock');
    // A reader started now sees neither: 2 cannot overtake 1.
    assert.deepEqual(await collect(store, head), []);
    assert.equal(secondDone, false);
    await tx1.query('COMMIT');
    const { position } = await second;
    const events = await collect(store, head);
    assert.deepEqual(
      events.map((e) => e.type),
      ['First', 'Second'],
    );
    assert.equal(events[0]?.id, firstId);
    assert.ok((events[0]?.position as number) < position);
    assert.equal(events[1]?.position, position);
    // Resuming from the first event delivers the second exactly once.
    assert.deepEqual(
      (await collect(store, events[0]?.position as number)).map((e) => e.type),
      ['Second'],
    );
  });

  it('an append that waited for the append lock sees what committed meanwhile: a stream deleted, a stream advanced', async () => {
    const observer = await client();
    const holder = await client();
    await store.append('wait-deleted', [{ type: 'Opened', data: {} }]);
    await store.append('wait-advanced', [{ type: 'Opened', data: {} }]);
    // Another session takes the append lock and, before it commits, deletes one
    // stream (as a hard delete does) and appends to the other.
    await holder.query('BEGIN');
    await holder.query(`SELECT pg_advisory_xact_lock${appendLockKey(s)}`);
    await holder.query(`DELETE FROM ${s}.events WHERE stream_id = 'wait-deleted'`);
    await holder.query(
      `INSERT INTO ${s}.streams (stream_id, version, truncated_before, tombstoned) VALUES ('wait-deleted', 1, 2, true)`,
    );
    await holder.query(
      `SELECT * FROM ${s}.append_events(ARRAY['wait-advanced'], ARRAY['wait'], ARRAY[1]::bigint[], ARRAY[1],
         ARRAY[$1], ARRAY['Advanced'], ARRAY[1], ARRAY['{}'], ARRAY['{}'], now())`,
      [randomUUID()],
    );
    // Single-event appends made now wait for the lock; what they check must be read after it.
    const onDeleted = store.append('wait-deleted', [{ type: 'Late', data: {} }], { expectedVersion: 'any' }).then(
      () => 'appended',
      (error: unknown) => error,
    );
    const onAdvanced = store.append('wait-advanced', [{ type: 'Late', data: {} }], { expectedVersion: 1 }).then(
      () => 'appended',
      (error: unknown) => error,
    );
    await waitUntil(() => appendLockWaiters(observer), 'an append to wait for the append lock');
    await holder.query('COMMIT');
    const deleted = await onDeleted;
    assert.ok(deleted instanceof StreamDeletedError, `expected StreamDeletedError, got ${String(deleted)}`);
    const advanced = await onAdvanced;
    assert.ok(advanced instanceof ConcurrencyError, `expected a version conflict, got ${String(advanced)}`);
    const { rows } = await observer.query<{ stream_id: string; versions: string[] }>(
      `SELECT stream_id, array_agg(type ORDER BY stream_version) AS versions FROM ${s}.events
        WHERE stream_id IN ('wait-deleted', 'wait-advanced') GROUP BY stream_id`,
    );
    assert.deepEqual(rows, [{ stream_id: 'wait-advanced', versions: ['Opened', 'Advanced'] }]);
  });

  it('an unrelated long-running transaction neither delays appends nor hides them from readers', async () => {
    const head = await store.headPosition();
    const idle = await client();
    await idle.query('BEGIN');
    await idle.query('SELECT pg_current_xact_id()'); // holds an xid: the snapshot xmin stays behind it
    const result = await store.append('long-1', [{ type: 'WhileOpen', data: {} }]);
    const events = await collect(store, head);
    assert.deepEqual(
      events.map((e) => e.position),
      [result.position],
    );
    await idle.query('ROLLBACK');
  });

  it('a randomized race: 16 writers over 4 stores, hot and cold streams, a resuming reader sees every event once', async () => {
    const head = await store.headPosition();
    const stores = [store, await openStore(), await openStore(), await openStore()];
    const readerStore = await openStore();
    const hot = ['race-hot-0', 'race-hot-1', 'race-hot-2'];
    let writing = true;
    let written = 0;
    const writers = Array.from({ length: 16 }, async (_, w) => {
      const writer = stores[w % stores.length] as PostgresEventStore;
      for (let i = 0; i < 40; i++) {
        const streamId =
          Math.random() < 0.4 ? (hot[Math.floor(Math.random() * hot.length)] as string) : `race-${w}-${i}`;
        const count = 1 + Math.floor(Math.random() * 3);
        const events = Array.from({ length: count }, (_, k) => ({ type: 'Raced', data: { w, i, k } }));
        await writer.append(streamId, events);
        written += count;
      }
    });
    const all = Promise.all(writers).finally(() => {
      writing = false;
    });

    // The reader reads one small page at a time, then drops its iterator and
    // resumes from its saved position, as a restarted process would.
    const seen: RecordedEvent[] = [];
    let saved = head;
    let finalHead = Number.POSITIVE_INFINITY;
    const deadline = Date.now() + 60_000;
    while (saved < finalHead) {
      assert.ok(Date.now() < deadline, 'the reader did not catch up in time');
      const pageSize = 1 + Math.floor(Math.random() * 25);
      let got = 0;
      for await (const event of readerStore.readAll({ after: saved, limit: pageSize, batchSize: 7 })) {
        seen.push(event);
        saved = event.position;
        got += 1;
      }
      if (!writing && finalHead === Number.POSITIVE_INFINITY) finalHead = await store.headPosition();
      if (got === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await all;

    const full = await collect(store, head);
    assert.equal(full.length, written, 'a full read holds every appended event');
    assert.equal(new Set(seen.map((e) => e.id)).size, seen.length, 'the reader saw an event twice');
    assert.deepEqual(
      seen.map((e) => `${e.position}:${e.id}`),
      full.map((e) => `${e.position}:${e.id}`),
      'the reader sequence differs from a fresh full read',
    );
    for (let i = 1; i < seen.length; i++) {
      assert.ok((seen[i]?.position as number) > (seen[i - 1]?.position as number), 'positions must increase');
    }
    // Per stream, versions are contiguous in the global order too.
    const versions = new Map<string, number>();
    for (const e of full) {
      const previous = versions.get(e.streamId) ?? 0;
      assert.equal(e.streamVersion, previous + 1, `stream ${e.streamId} out of order`);
      versions.set(e.streamId, e.streamVersion);
    }
  });
});
