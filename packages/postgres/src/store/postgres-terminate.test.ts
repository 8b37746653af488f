import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AppendResult, EventToAppend } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { quoteSchema } from '../migrations.ts';
import { getPostgresEventStore, type PostgresEventStore } from './postgres-event-store.ts';
import { appendLockKey } from './schema.ts';

// The server kills the store's connection while an append waits on a lock:
// once after the append function inserted some of its rows, once before it
// inserted any; and the same two for the single-event path (two statements in
// one pipeline). The caller must get a retryable storage error, nothing of
// the append may be stored, and the same append made again must be idempotent.

const skip = await postgresUnavailable();
const schema = testSchema('terminate');
const s = quoteSchema(schema);

type Settled = { result: AppendResult } | { error: unknown };

interface BlockedBackend {
  pid: number;
  wait_event: string;
  /** The backend's transaction id: set only once its transaction wrote something. */
  xid: string | null;
}

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: postgresUrl, application_name: 'factline-terminate-test' });
  await client.connect();
  return client;
}

describe('postgres store: the server kills the connection mid-append', { skip }, () => {
  let store: PostgresEventStore;
  /** A store whose pool holds a writer connection: single-event appends take the pipelined path. */
  let piped: PostgresEventStore;
  let observer: pg.Client;

  before(async () => {
    // One connection: whatever the store does after a kill needs the pool to replace the dead one.
    store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 1 });
    piped = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
    observer = await connect();
  });

  after(async () => {
    await store?.close();
    await piped?.close();
    await observer?.end();
    await dropSchema(schema);
  });

  /** Starts the append, waits until its backend waits on a lock, kills that backend; returns the outcome. */
  async function appendAndKill(
    streamId: string,
    events: EventToAppend[],
    on = store,
    statement = `${s}.append_events`,
  ): Promise<{ backend: BlockedBackend; settled: Settled }> {
    let finished = false;
    const outcome: Promise<Settled> = on
      .append(streamId, events, { expectedVersion: 'no-stream' })
      .then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      )
      .finally(() => {
        finished = true;
      });
    const backend = await waitUntil(
      async () => {
        if (finished)
          throw new Error(`the append finished before it was seen waiting: ${JSON.stringify(await outcome)}`);
        const { rows } = await observer.query<BlockedBackend>(
          `SELECT pid, wait_event, backend_xid::text AS xid FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'factline' AND state = 'active'
              AND wait_event_type = 'Lock' AND position($1 in query) > 0`,
          [statement],
        );
        assert.ok(rows.length <= 1, `more than one append of this schema waits: ${JSON.stringify(rows)}`);
        return rows[0];
      },
      'the append to wait on the blocker',
      10_000,
      10,
    );
    const killer = await connect();
    try {
      // With a timeout, pg_terminate_backend returns once the backend is gone.
      const { rows } = await killer.query<{ killed: boolean }>('SELECT pg_terminate_backend($1, 5000) AS killed', [
        backend.pid,
      ]);
      assert.equal(rows[0]?.killed, true);
    } finally {
      await killer.end();
    }
    return { backend, settled: await outcome };
  }

  function assertRetryableStorageError(settled: Settled): void {
    assert.ok('error' in settled, `the append should have failed, but it returned ${JSON.stringify(settled)}`);
    const error = settled.error as { code?: unknown; retryable?: unknown; message?: unknown };
    assert.equal(error.code, 'STORAGE', `unexpected error: ${String(error.message)}`);
    assert.equal(error.retryable, true, `not retryable: ${String(error.message)}`);
  }

  async function assertNothingStored(streamId: string, ids: string[], headBefore: number): Promise<void> {
    const read = await store.readStream(streamId);
    assert.equal(read.exists, false);
    assert.equal(read.version, 0);
    assert.equal(await store.headPosition(), headBefore);
    const { rows } = await observer.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${s}.events WHERE event_id = ANY ($1::text[]) OR stream_id = $2`,
      [ids, streamId],
    );
    assert.equal(rows[0]?.n, 0);
  }

  /**
   * Makes the append while another transaction holds an uncommitted row with
   * `blockedId`, so that the append inserts, then waits on the unique index;
   * kills it there. It must fail retryably and store nothing.
   */
  async function killWaitingOnId(
    streamId: string,
    events: EventToAppend[],
    blockedId: string,
    on = store,
    statement?: string,
  ): Promise<void> {
    const headBefore = await store.headPosition();
    const blocker = await connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(
        `INSERT INTO ${s}.events (position, event_id, stream_id, stream_version, category, type,
                                  schema_version, data, metadata, recorded_at)
         VALUES (nextval('${s}.events_position_seq'), $1, $2, 1, 'blocker', 'B', 1, '{}', '{}', now())`,
        [blockedId, `blocker-${blockedId}`],
      );
      const { backend, settled } = await appendAndKill(streamId, events, on, statement);
      assert.equal(backend.wait_event, 'transactionid', 'the append should wait on the blocker’s transaction');
      assert.notEqual(backend.xid, null, 'the append should have written rows before it waited');
      assertRetryableStorageError(settled);
      await blocker.query('ROLLBACK');
      await assertNothingStored(
        streamId,
        events.map((e) => e.id as string),
        headBefore,
      );
    } finally {
      await blocker.end().catch(() => undefined);
    }
  }

  /**
   * Makes the append while another session holds the append lock, kills it
   * while it waits for the lock; it must fail retryably and store nothing.
   * Returns the killed backend's pid.
   */
  async function killWaitingOnLock(
    streamId: string,
    events: EventToAppend[],
    on = store,
    statement?: string,
  ): Promise<number> {
    const headBefore = await store.headPosition();
    const blocker = await connect();
    try {
      await blocker.query(`SELECT pg_advisory_lock${appendLockKey(s)}`);
      const { backend, settled } = await appendAndKill(streamId, events, on, statement);
      assert.equal(backend.wait_event, 'advisory', 'the append should wait on the append lock');
      assert.equal(backend.xid, null, 'the append should not have written anything before it waited');
      assertRetryableStorageError(settled);
      await assertNothingStored(
        streamId,
        events.map((e) => e.id as string),
        headBefore,
      );
      await blocker.query(`SELECT pg_advisory_unlock${appendLockKey(s)}`);
      return backend.pid;
    } finally {
      await blocker.end().catch(() => undefined);
    }
  }

  /** The same append, made twice more: stored once, the second call reports the first one's result. */
  async function assertIdempotentRetry(streamId: string, events: EventToAppend[], on = store): Promise<AppendResult> {
    const ids = events.map((e) => e.id);
    const first = await on.append(streamId, events, { expectedVersion: 'no-stream' });
    assert.equal(first.version, events.length);
    assert.deepEqual(
      first.events.map((e) => [e.id, e.streamVersion]),
      ids.map((id, i) => [id, i + 1]),
    );
    const again = await on.append(streamId, events, { expectedVersion: 'no-stream' });
    assert.equal(again.version, first.version);
    assert.equal(again.position, first.position);
    const placed = (result: AppendResult) => result.events.map((e) => [e.id, e.streamVersion, e.position]);
    assert.deepEqual(placed(again), placed(first));
    const read = await store.readStream(streamId);
    assert.equal(read.version, events.length);
    assert.deepEqual(
      read.events.map((e) => [e.id, e.streamVersion, e.position, e.type]),
      first.events.map((e) => [e.id, e.streamVersion, e.position, e.type]),
    );
    assert.equal(await store.headPosition(), first.position);
    return first;
  }

  const orderEvents = (lastId: string): EventToAppend[] => [
    { id: randomUUID(), type: 'OrderPlaced', data: { total: 30 } },
    { id: randomUUID(), type: 'OrderPaid', data: { amount: 30 } },
    { id: lastId, type: 'OrderShipped', data: { carrier: 'post' } },
  ];

  it('after rows were inserted: an error, nothing stored, and the retry is idempotent', {
    timeout: 30_000,
  }, async () => {
    // The append inserts its first two events, then waits on the unique index for its third id.
    const blockedId = randomUUID();
    const events = orderEvents(blockedId);
    const streamId = `order-${randomUUID()}`;
    await killWaitingOnId(streamId, events, blockedId);
    await assertIdempotentRetry(streamId, events);
  });

  it('before anything was inserted: an error, nothing stored, the pool recovers, the retry is idempotent', {
    timeout: 30_000,
  }, async () => {
    const events = orderEvents(randomUUID());
    const streamId = `order-${randomUUID()}`;
    const headBefore = await store.headPosition();
    const killedPid = await killWaitingOnLock(streamId, events);

    // An unrelated append succeeds at once, on a new connection.
    const other = await store.append(`order-${randomUUID()}`, [{ type: 'OrderPlaced', data: { total: 1 } }], {
      expectedVersion: 'no-stream',
    });
    assert.equal(other.version, 1);
    assert.ok(other.position > headBefore);
    const { rows } = await store.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    assert.notEqual(rows[0]?.pid, killedPid);

    const retried = await assertIdempotentRetry(streamId, events);
    assert.ok((retried.events[0]?.position ?? 0) > other.position);
  });

  it('single event, killed in its insert (after the lock, before the commit): an error, nothing stored, the retry is idempotent', {
    timeout: 30_000,
  }, async () => {
    const id = randomUUID();
    const events: EventToAppend[] = [{ id, type: 'OrderPlaced', data: { total: 7 } }];
    const streamId = `order-${randomUUID()}`;
    await killWaitingOnId(streamId, events, id, piped, `INSERT INTO ${s}.events`);
    await assertIdempotentRetry(streamId, events, piped);
  });

  it('single event, killed waiting for the append lock: an error, nothing stored, the next append uses a new connection', {
    timeout: 30_000,
  }, async () => {
    const events: EventToAppend[] = [{ id: randomUUID(), type: 'OrderPlaced', data: { total: 8 } }];
    const streamId = `order-${randomUUID()}`;
    const headBefore = await store.headPosition();
    const killedPid = await killWaitingOnLock(streamId, events, piped, `pg_advisory_xact_lock${appendLockKey(s)}`);
    const retried = await assertIdempotentRetry(streamId, events, piped);
    const { rows } = await observer.query<{ pids: number[] }>(
      `SELECT array_agg(pid) AS pids FROM pg_stat_activity WHERE application_name = 'factline' AND datname = current_database()`,
    );
    assert.ok(!(rows[0]?.pids ?? []).includes(killedPid), 'the killed connection should be gone');
    assert.ok(retried.position > headBefore);
  });
});
