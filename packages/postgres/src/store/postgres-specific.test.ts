import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isConcurrencyError, isStorageError, isValidationError, StreamDeletedError } from '@factline/core';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { migratePostgres } from '../migrations.ts';
import { getPostgresEventStore, type PostgresEventStore } from './postgres-event-store.ts';
import { eventStoreMigrations } from './schema.ts';

const skip = await postgresUnavailable();

describe('PostgreSQL store specifics', { skip }, () => {
  const schemas: string[] = [];
  const stores: PostgresEventStore[] = [];
  const open = async (schema: string, options: { poolSize?: number; maxBatch?: number } = {}) => {
    const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, ...options });
    stores.push(store);
    return store;
  };
  const freshSchema = (label: string) => {
    const schema = testSchema(label);
    schemas.push(schema);
    return schema;
  };
  const sql = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  };

  after(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    for (const schema of schemas) await dropSchema(schema);
  });

  it('reads give events written by other means their stored fields: sub-millisecond times truncated, schema versions and metadata as stored', async () => {
    const schema = freshSchema('read_rows');
    const store = await open(schema);
    const { events: appended } = await store.append('s-1', [
      { type: 'A', data: { n: 1 } },
      { type: 'B', data: { n: 2 }, schemaVersion: 3, metadata: { correlationId: 'c-1', tenant: 't' } },
      { type: 'C', data: null },
    ]);
    // Appended outside any handler with no correlation id, A and C correlate themselves.
    const selfCorrelated = (i: number) => ({ correlationId: appended[i]?.id });
    // Times with microseconds, before and after 1970, as another writer could have stored them.
    await sql(`UPDATE "${schema}".events SET recorded_at = '2026-01-01T00:00:00.123987Z' WHERE type = 'A'`);
    await sql(`UPDATE "${schema}".events SET recorded_at = '1969-12-31T23:59:59.9995Z' WHERE type = 'B'`);
    const expected = [
      {
        type: 'A',
        data: { n: 1 },
        schemaVersion: 1,
        metadata: selfCorrelated(0),
        recordedAt: '2026-01-01T00:00:00.123Z',
      },
      {
        type: 'B',
        data: { n: 2 },
        schemaVersion: 3,
        metadata: { correlationId: 'c-1', tenant: 't' },
        recordedAt: '1969-12-31T23:59:59.999Z',
      },
      { type: 'C', data: null, schemaVersion: 1, metadata: selfCorrelated(2) },
    ];
    const shape = (
      events: readonly { type: string; data: unknown; schemaVersion: number; metadata: unknown; recordedAt: Date }[],
    ) =>
      events.map((e) => ({
        type: e.type,
        data: e.data,
        schemaVersion: e.schemaVersion,
        metadata: e.metadata,
        ...(e.type === 'C' ? {} : { recordedAt: e.recordedAt.toISOString() }),
      }));
    const forwards = await store.readStream('s-1');
    assert.deepEqual(shape(forwards.events), expected);
    assert.deepEqual(
      shape((await store.readStream('s-1', { direction: 'backwards' })).events),
      [...expected].reverse(),
    );
    const all = [];
    for await (const event of store.readAll()) all.push(event);
    assert.deepEqual(shape(all), expected);
    assert.deepEqual(
      all.map((e) => e.streamId),
      ['s-1', 's-1', 's-1'],
    );
  });

  it('stores starting at once on an empty schema migrate it once', async () => {
    const schema = freshSchema('migrate');
    const opened = await Promise.all(Array.from({ length: 6 }, () => open(schema, { poolSize: 1 })));
    const rows = await sql<{ component: string; version: number }>(
      `SELECT component, version FROM "${schema}".migrations ORDER BY version`,
    );
    assert.deepEqual(
      rows,
      eventStoreMigrations.map((m) => ({ component: 'event-store', version: m.version })),
    );
    const results = await Promise.all(opened.map((s, i) => s.append(`m-${i}`, [{ type: 'Opened', data: {} }])));
    assert.equal(new Set(results.map((r) => r.position)).size, 6);
  });

  it('refuses a schema newer than it knows, and leaves it as it was', async () => {
    const schema = freshSchema('newer');
    const store = await open(schema);
    await store.append('n-1', [{ type: 'Kept', data: {} }]);
    await sql(
      `INSERT INTO "${schema}".migrations (component, version, description) VALUES ('event-store', 99, 'future')`,
    );
    await assert.rejects(
      getPostgresEventStore({ connectionString: postgresUrl, schema }),
      (error: unknown) => isStorageError(error) && /newer than this Factline knows/.test((error as Error).message),
    );
    assert.equal((await store.readStream('n-1')).version, 1);
  });

  it('rejects a schema name that is not a plain identifier, and bad options, before connecting', async () => {
    for (const schema of ['Factline', 'a-b', 'x"; DROP TABLE y; --', '', '1abc', 'a'.repeat(64)]) {
      await assert.rejects(getPostgresEventStore({ connectionString: postgresUrl, schema }), isValidationError);
    }
    await assert.rejects(getPostgresEventStore({} as never), isValidationError);
    await assert.rejects(
      getPostgresEventStore({ connectionString: postgresUrl, schema: freshSchema('opts'), poolSize: 0 }),
      isValidationError,
    );
  });

  it('user input is data, never SQL: quotes and statements in ids, types and payloads are stored as given', async () => {
    const store = await open(freshSchema('quotes'));
    const streamId = `o'; DROP TABLE events; --`;
    const type = `T'"); DELETE FROM streams; --`;
    const data = { text: `'$1' \\ "x" $$ E'\\n'` };
    await store.append(streamId, [{ type, data, metadata: { note: "it's" } }]);
    const read = await store.readStream(streamId);
    assert.equal(read.events[0]?.type, type);
    assert.deepEqual(read.events[0]?.data, data);
    assert.deepEqual(read.events[0]?.metadata, { note: "it's", correlationId: read.events[0]?.id });
  });

  it('concurrent appends share batches; one conflict fails alone', async () => {
    const store = await open(freshSchema('batch'));
    await store.append('b-conflict', [{ type: 'First', data: {} }]);
    const before = store.stats();
    const attempts = Array.from({ length: 64 }, (_, i) =>
      i === 20
        ? store.append('b-conflict', [{ type: 'Stale', data: {} }], { expectedVersion: 0 })
        : store.append(`b-${i}`, [{ type: 'Placed', data: { i } }], { expectedVersion: 'no-stream' }),
    );
    const settled = await Promise.allSettled(attempts);
    const after = store.stats();
    assert.equal(after.jobs - before.jobs, 64);
    assert.ok(after.commits - before.commits < 64, `expected batching, got ${after.commits - before.commits} commits`);
    assert.ok(after.largestBatch > 1);
    settled.forEach((outcome, i) => {
      if (i === 20) {
        assert.equal(outcome.status, 'rejected');
        assert.ok(isConcurrencyError((outcome as PromiseRejectedResult).reason));
      } else {
        assert.equal(
          outcome.status,
          'fulfilled',
          `append ${i} failed: ${String((outcome as PromiseRejectedResult).reason)}`,
        );
      }
    });
    assert.equal((await store.readStream('b-conflict')).version, 1);
  });

  it('a batch of one-event appends: each sees the ones before it, truncated and deleted streams are decided alone', async () => {
    const store = await open(freshSchema('one_event_batch'));
    await store.append(
      'm-trunc',
      [1, 2, 3].map((n) => ({ type: 'T', data: { n } })),
    );
    await store.truncateBefore('m-trunc', 3);
    await store.append('m-dead', [{ type: 'D', data: {} }]);
    await store.deleteStream('m-dead', { mode: 'hard' });
    const before = store.stats();
    // The first append goes alone; the others arrive while it is written and share the next batch.
    const settled = await Promise.allSettled([
      store.append('m-first', [{ type: 'F', data: {} }]),
      store.append('m-same', [{ type: 'S1', data: {} }], { expectedVersion: 'no-stream' }),
      store.append('m-same', [{ type: 'S2', data: {} }], { expectedVersion: 1 }),
      store.append('m-same', [{ type: 'Stale', data: {} }], { expectedVersion: 1 }),
      store.append('m-trunc', [{ type: 'T4', data: {} }], { expectedVersion: 'any' }),
      store.append('m-dead', [{ type: 'Late', data: {} }], { expectedVersion: 'any' }),
      store.append('m-new', [{ type: 'N', data: {} }], { expectedVersion: 'stream-exists' }),
      store.append('m-last', [{ type: 'L', data: {} }], { expectedVersion: 'no-stream' }),
    ]);
    const after = store.stats();
    assert.equal(after.commits - before.commits, 2, 'one append alone, then one batch of seven');
    const value = (i: number) => {
      const outcome = settled[i] as PromiseSettledResult<{ version: number; position: number }>;
      assert.equal(outcome.status, 'fulfilled', `append ${i}: ${String((outcome as PromiseRejectedResult).reason)}`);
      return (outcome as PromiseFulfilledResult<{ version: number; position: number }>).value;
    };
    const reason = (i: number) => {
      assert.equal(settled[i]?.status, 'rejected', `append ${i} should have failed`);
      return (settled[i] as PromiseRejectedResult).reason;
    };
    assert.equal(value(1).version, 1);
    assert.equal(value(2).version, 2, 'the second append to m-same sees the first, in the same batch');
    const stale = reason(3);
    assert.ok(isConcurrencyError(stale));
    assert.equal(stale.actualVersion, 2);
    assert.equal(value(4).version, 4, 'the truncated stream keeps counting');
    assert.ok(reason(5) instanceof StreamDeletedError);
    const missing = reason(6);
    assert.ok(isConcurrencyError(missing));
    assert.equal(missing.actualVersion, 0);
    assert.equal(value(7).version, 1);
    // Positions follow the batch's order; the truncated stream's append was decided after it.
    assert.ok(value(0).position < value(1).position);
    assert.ok(value(1).position < value(2).position);
    assert.ok(value(2).position < value(7).position);
    assert.ok(value(7).position < value(4).position);
    assert.deepEqual(
      (await store.readStream('m-same')).events.map((e) => e.type),
      ['S1', 'S2'],
    );
    assert.deepEqual(
      (await store.readStream('m-trunc')).events.map((e) => [e.type, e.streamVersion]),
      [
        ['T', 3],
        ['T4', 4],
      ],
    );
    assert.equal((await store.readStream('m-new')).exists, false);
    const { n } = (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${store.schema}".events`))[0] as {
      n: number;
    };
    assert.equal(n, 6, 'm-trunc 3 and 4, m-first, m-same 1 and 2, m-last');
  });

  it('appends to a truncated stream sharing a batch are decided one after another, in the batch order', async () => {
    const store = await open(freshSchema('deferred_order'));
    for (let round = 0; round < 10; round++) {
      const stream = `t-${round}`;
      await store.append(
        stream,
        [1, 2].map((n) => ({ type: 'T', data: { n } })),
      );
      await store.truncateBefore(stream, 2);
      // The first append goes alone; the four to the truncated stream arrive while it is written and share a batch.
      const settled = await Promise.allSettled([
        store.append(`other-${round}`, [{ type: 'O', data: {} }]),
        store.append(stream, [{ type: 'A', data: {} }], { expectedVersion: 2 }),
        store.append(stream, [{ type: 'B', data: {} }], { expectedVersion: 3 }),
        store.append(stream, [{ type: 'C', data: {} }]),
        store.append(stream, [{ type: 'D', data: {} }]),
      ]);
      const failed = settled.flatMap((outcome, i) =>
        outcome.status === 'rejected' ? [`${i}: ${String(outcome.reason)}`] : [],
      );
      assert.deepEqual(failed, [], `round ${round}`);
      assert.deepEqual(
        (await store.readStream(stream)).events.map((e) => `${e.type}${e.streamVersion}`),
        ['T2', 'A3', 'B4', 'C5', 'D6'],
        `round ${round}`,
      );
    }
  });

  it('a one-event batch holding a retried append: the retry gets the stored result, the others are written', async () => {
    const store = await open(freshSchema('retry_batch'));
    const event = { id: 'retried-event-1', type: 'Placed', data: { total: 3 } };
    const original = await store.append('m-retry', [event], { expectedVersion: 'no-stream' });
    const settled = await Promise.all([
      store.append('m-a', [{ type: 'A', data: {} }]),
      store.append('m-retry', [event], { expectedVersion: 'no-stream' }),
      store.append('m-b', [{ type: 'B', data: {} }], { expectedVersion: 'no-stream' }),
    ]);
    assert.equal(settled[1].position, original.position);
    assert.equal(settled[1].version, 1);
    assert.equal(settled[2].version, 1);
    assert.ok(settled[2].position > original.position);
    assert.equal((await store.readStream('m-retry')).events.length, 1);
  });

  it('a version-1 schema is upgraded on open (append_refused added) and its streams stay appendable', async () => {
    const schema = freshSchema('upgrade_v1');
    const pool = new pg.Pool({ connectionString: postgresUrl });
    try {
      await migratePostgres(pool, schema, 'event-store', eventStoreMigrations.slice(0, 1));
      await pool.query(`SELECT "${schema}".append_event('u-1', 'u', 0, 'u-1-a', 'A', 1, '{}', '{}', now())`);
    } finally {
      await pool.end();
    }
    const store = await open(schema);
    const versions = await sql<{ version: number }>(
      `SELECT version FROM "${schema}".migrations WHERE component = 'event-store' ORDER BY version`,
    );
    assert.deepEqual(
      versions.map((v) => v.version),
      eventStoreMigrations.map((m) => m.version),
    );
    assert.equal((await store.append('u-1', [{ type: 'B', data: {} }], { expectedVersion: 1 })).version, 2);
    assert.equal((await store.append('u-1', [{ type: 'C', data: {} }])).version, 3);
    // A conflict reported by append_refused, from the version-reading insert.
    await assert.rejects(
      store.append('u-2', [{ type: 'A', data: {} }], { expectedVersion: 'stream-exists' }),
      (error: unknown) => isConcurrencyError(error) && error.actualVersion === 0,
    );
    assert.deepEqual(
      (await store.readStream('u-1')).events.map((e) => e.type),
      ['A', 'B', 'C'],
    );
  });

  it('an append the database refuses fails alone even inside a batch', async () => {
    const schema = freshSchema('refused');
    const store = await open(schema);
    // Stands for any rule a user adds to the table (a CHECK, a trigger).
    await sql(`ALTER TABLE "${schema}".events ADD CONSTRAINT no_forbidden CHECK (type <> 'Forbidden')`);
    const settled = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        store.append(`r-${i}`, [{ type: i === 5 ? 'Forbidden' : 'Fine', data: {} }]),
      ),
    );
    assert.ok(store.stats().largestBatch > 1, 'the refused append should have shared a batch');
    settled.forEach((outcome, i) => {
      if (i === 5) {
        assert.equal(outcome.status, 'rejected');
        const error = (outcome as PromiseRejectedResult).reason;
        assert.ok(isStorageError(error));
        assert.equal(error.retryable, false);
      } else {
        assert.equal(outcome.status, 'fulfilled');
      }
    });
    assert.equal((await store.readStream('r-5')).exists, false);
  });

  it('positions are handed out in commit order and never reused after deletes', async () => {
    const store = await open(freshSchema('reuse'));
    const first = await store.append('d-1', [{ type: 'A', data: {} }]);
    await store.deleteStream('d-1');
    assert.equal(await store.headPosition(), first.position);
    const next = await store.append('d-2', [{ type: 'B', data: {} }]);
    assert.ok(next.position > first.position);
  });
});
