import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, afterEach, before, describe, it } from 'node:test';
import { defineProjection, isProjectionFailedError, isStorageError, type Projection } from '@factline/core';
import { createProjectionRunner } from '@factline/core/adapter';
import { type CounterModel, testProjectionConformance, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore, type PostgresEventStore } from '../store/postgres-event-store.ts';
import { appendChannel, eventStoreMigrations } from '../store/schema.ts';
import {
  getPostgresProjectionBackend,
  projectionLeaseKey,
  readLiveProjectionVersion,
  startPostgresProjections,
} from './postgres-projections.ts';

const skip = await postgresUnavailable();
const schemas: string[] = [];
const stores: PostgresEventStore[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
let sql: pg.Client;

/** A store on a schema of its own (dropped after the tests). */
async function openStore(label: string): Promise<PostgresEventStore> {
  const schema = testSchema(label);
  schemas.push(schema);
  const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
  stores.push(store);
  return store;
}

const rows = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> =>
  (await sql.query<R>(text, values)).rows;

/** A read model of totals per stream, in the store's schema: `amount` of `Added` events. */
function totals(store: PostgresEventStore, name = 'totals'): Projection<pg.PoolClient> {
  const table = `"${store.schema}".${name}_model`;
  return defineProjection<pg.PoolClient>({
    name,
    handles: ['Added'],
    init: async (tx) => {
      await tx.query(`CREATE TABLE IF NOT EXISTS ${table} (stream_id text PRIMARY KEY, total integer NOT NULL)`);
    },
    reset: async (tx) => {
      await tx.query(`DELETE FROM ${table}`);
    },
    handle: async (events, tx) => {
      for (const event of events) {
        await tx.query(
          `INSERT INTO ${table} (stream_id, total) VALUES ($1, $2)
           ON CONFLICT (stream_id) DO UPDATE SET total = ${table}.total + excluded.total`,
          [event.streamId, (event.data as { amount: number }).amount],
        );
      }
    },
  });
}

/**
 * The conformance suite's counter model in PostgreSQL SQL: counters per
 * (projection, stream), and every applied position in the order applied
 * (`seq`), duplicates kept.
 */
function postgresCounterModel(store: PostgresEventStore): CounterModel<pg.PoolClient> {
  const s = `"${store.schema}"`;
  return {
    async init(tx) {
      await tx.query(`CREATE TABLE IF NOT EXISTS ${s}.counter_streams (
        projection text NOT NULL, stream_id text NOT NULL, n integer NOT NULL, PRIMARY KEY (projection, stream_id))`);
      await tx.query(`CREATE TABLE IF NOT EXISTS ${s}.counter_positions (
        seq bigserial PRIMARY KEY, projection text NOT NULL, position bigint NOT NULL)`);
    },
    async reset(tx, projection) {
      await tx.query(`DELETE FROM ${s}.counter_streams WHERE projection = $1`, [projection]);
      await tx.query(`DELETE FROM ${s}.counter_positions WHERE projection = $1`, [projection]);
    },
    async apply(tx, events, projection) {
      await tx.query(
        `INSERT INTO ${s}.counter_positions (projection, position)
         SELECT $1, p.position FROM unnest($2::bigint[]) WITH ORDINALITY AS p(position, ord) ORDER BY p.ord`,
        [projection, events.map((event) => event.position)],
      );
      await tx.query(
        `INSERT INTO ${s}.counter_streams (projection, stream_id, n)
         SELECT $1, stream_id, count(*) FROM unnest($2::text[]) AS stream_id GROUP BY stream_id
         ON CONFLICT (projection, stream_id) DO UPDATE SET n = counter_streams.n + excluded.n`,
        [projection, events.map((event) => event.streamId)],
      );
    },
    async read(projection) {
      const perStream: Record<string, number> = {};
      const streams = await store.pool.query<{ stream_id: string; n: number }>(
        `SELECT stream_id, n FROM ${s}.counter_streams WHERE projection = $1 AND n > 0 ORDER BY stream_id`,
        [projection],
      );
      for (const row of streams.rows) perStream[row.stream_id] = row.n;
      const positions = await store.pool.query<{ position: string }>(
        `SELECT position FROM ${s}.counter_positions WHERE projection = $1 ORDER BY seq`,
        [projection],
      );
      return { perStream, applied: positions.rows.map((row) => Number(row.position)) };
    },
  };
}

let conformanceStore: PostgresEventStore | undefined;
testProjectionConformance<pg.PoolClient>({
  name: 'postgres',
  skip,
  async createEnvironment() {
    conformanceStore ??= await getPostgresEventStore({
      connectionString: postgresUrl,
      schema: testSchema('pconf'),
      poolSize: 6,
    });
    const store = conformanceStore;
    const backend = getPostgresProjectionBackend(store);
    return { store, backend, model: postgresCounterModel(store), close: () => backend.close() };
  },
  async teardown() {
    await conformanceStore?.dropSchema();
  },
});

describe('postgres projections', { skip }, () => {
  before(async () => {
    sql = new pg.Client({ connectionString: postgresUrl, application_name: 'factline-projections-test' });
    await sql.connect();
  });

  // Each test's runners, backends and stores are closed after it (connections are few).
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    await Promise.allSettled(stores.splice(0).map((store) => store.close()));
  });

  after(async () => {
    await sql?.end();
    for (const schema of schemas) await dropSchema(schema);
  });

  it('appends NOTIFY the head on the schema channel after they commit (no trigger: the event-store migrations are the store’s own)', async () => {
    const store = await openStore('notify');
    const migrations = await rows<{ component: string; version: number }>(
      `SELECT component, version FROM "${store.schema}".migrations WHERE component = 'event-store' ORDER BY version`,
    );
    assert.deepEqual(
      migrations.map((m) => m.version),
      eventStoreMigrations.map((m) => m.version),
    );
    const listener = new pg.Client({ connectionString: postgresUrl });
    await listener.connect();
    cleanups.push(() => listener.end());
    const heard: { channel: string; payload: string | undefined }[] = [];
    listener.on('notification', (message) => heard.push({ channel: message.channel, payload: message.payload }));
    await listener.query(`LISTEN "${appendChannel(store.schema)}"`);

    await store.append('n-1', [{ type: 'Added', data: { amount: 1 } }]);
    const three = await store.append('n-2', [
      { type: 'Added', data: { amount: 1 } },
      { type: 'Added', data: { amount: 2 } },
      { type: 'Added', data: { amount: 3 } },
    ]);
    await assert.rejects(store.append('n-1', [{ type: 'Added', data: {} }], { expectedVersion: 0 }));
    // Notifications are coalesced (one in flight at a time): the last one carries the head.
    await waitUntil(() => heard.at(-1)?.payload === String(three.position), 'a notification of the head');
    const positions = heard.map((h) => Number(h.payload));
    assert.ok(heard.every((h) => h.channel === appendChannel(store.schema)));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
    // A long schema name still gives a valid channel (at most 63 bytes).
    assert.ok(appendChannel('s'.repeat(63)).length <= 63);
    assert.notEqual(appendChannel('s'.repeat(63)), appendChannel(`${'s'.repeat(62)}t`));
  });

  it('catches up in batches, then follows appends live, woken by the append signal (no periodic check)', async () => {
    const store = await openStore('live');
    for (let i = 1; i <= 30; i++) {
      await store.append(`acc-${i % 4}`, [{ type: i % 5 === 0 ? 'Other' : 'Added', data: { amount: i } }]);
    }
    const head = await store.headPosition();
    // The periodic check is a minute away: only the append signal can wake the projection.
    const runner = await startPostgresProjections(store, [totals(store)], { idleCheckMs: 60_000, batchSize: 7 });
    cleanups.push(() => runner.stop());
    await runner.waitFor('totals', head, { timeoutMs: 5000 });
    const caughtUp = runner.status('totals');
    assert.equal(caughtUp.lease, 'held');
    assert.equal(caughtUp.checkpoint, head);
    const model = await rows<{ stream_id: string; total: number }>(
      `SELECT stream_id, total FROM "${store.schema}".totals_model ORDER BY stream_id`,
    );
    const expected = new Map<string, number>();
    for (let i = 1; i <= 30; i++) {
      if (i % 5 !== 0) expected.set(`acc-${i % 4}`, (expected.get(`acc-${i % 4}`) ?? 0) + i);
    }
    assert.deepEqual(
      model.map((row) => [row.stream_id, row.total]),
      [...expected].sort(),
    );

    await waitUntil(() => runner.backend.listening, 'the LISTEN connection');
    await waitUntil(() => runner.status('totals').state === 'running', 'the projection to go live');
    const latencies: number[] = [];
    for (let round = 1; round <= 5; round++) {
      const type = round === 3 ? 'Other' : 'Added';
      const { position } = await store.append('live-1', [{ type, data: { amount: 100 } }]);
      const started = performance.now();
      await runner.waitFor('totals', position, { timeoutMs: 500 });
      latencies.push(performance.now() - started);
    }
    const [live] = await rows<{ total: number }>(
      `SELECT total FROM "${store.schema}".totals_model WHERE stream_id = 'live-1'`,
    );
    assert.equal(live?.total, 400);
    assert.ok(Math.max(...latencies) < 500, `latencies: ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  });

  it('commits the read model and the checkpoint in one transaction: a handler error leaves neither', async () => {
    const store = await openStore('commit');
    const backend = getPostgresProjectionBackend(store);
    cleanups.push(() => backend.close());
    const table = `"${store.schema}".written`;
    await backend.transaction(async (tx) => {
      await tx.query(`CREATE TABLE ${table} (n integer NOT NULL)`);
    });
    const count = async () => (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n;

    // Rows written, then the handler throws: the very same error comes back; nothing is kept.
    const boom = new Error('boom after writing');
    await assert.rejects(
      backend.commit({
        name: 'p',
        expected: 0,
        checkpoint: 5,
        work: async (tx) => {
          await tx.query(`INSERT INTO ${table} VALUES (1), (2)`);
          throw boom;
        },
      }),
      (error) => error === boom,
    );
    assert.equal(await count(), 0);
    assert.equal(await backend.loadCheckpoint('p'), 0);

    // A SQL error of the handler is the driver's error, unchanged (not a StorageError).
    await assert.rejects(
      backend.commit({
        name: 'p',
        expected: 0,
        checkpoint: 5,
        work: async (tx) => {
          await tx.query(`INSERT INTO ${table} VALUES (3)`);
          await tx.query('SELECT 1 / 0');
        },
      }),
      (error: unknown) => !isStorageError(error) && (error as { code?: string }).code === '22012',
    );
    assert.equal(await count(), 0);

    // A moved checkpoint: false, and the work does not run.
    let ran = false;
    assert.equal(
      await backend.commit({
        name: 'p',
        expected: 3,
        checkpoint: 5,
        work: () => {
          ran = true;
        },
      }),
      false,
    );
    assert.equal(ran, false);
    assert.equal(await backend.loadCheckpoint('p'), 0);

    assert.equal(
      await backend.commit({
        name: 'p',
        expected: 0,
        checkpoint: 5,
        work: async (tx) => {
          await tx.query(`INSERT INTO ${table} VALUES (1), (2)`);
        },
      }),
      true,
    );
    assert.equal(await count(), 2);
    assert.equal(await backend.loadCheckpoint('p'), 5);

    // Through the runner: the batch with the failing event is retried, split, and the
    // projection stops right before the failing event, with the rows of the events before it only.
    const positions: number[] = [];
    for (let i = 1; i <= 6; i++) {
      const { position } = await store.append('c-1', [{ type: 'Added', data: { amount: i, poison: i === 4 } }]);
      positions.push(position);
    }
    const applied = `"${store.schema}".applied`;
    const poisoned = defineProjection<pg.PoolClient>({
      name: 'poisoned',
      handles: ['Added'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS ${applied} (position bigint NOT NULL)`);
      },
      handle: async (events, tx) => {
        for (const event of events) {
          await tx.query(`INSERT INTO ${applied} VALUES ($1)`, [event.position]);
          if ((event.data as { poison: boolean }).poison) throw new Error(`poison at ${event.position}`);
        }
      },
    });
    const runner = createProjectionRunner(backend, [poisoned], { maxAttempts: 2, initialBackoffMs: 1 });
    cleanups.push(() => runner.stop());
    await runner.start();
    await assert.rejects(runner.waitFor('poisoned', positions[5] as number, { timeoutMs: 5000 }), (error: unknown) =>
      isProjectionFailedError(error),
    );
    const status = runner.status('poisoned');
    assert.equal(status.state, 'failed');
    assert.equal(status.checkpoint, positions[2]);
    assert.equal(status.lastError?.position, positions[3]);
    assert.equal(await backend.loadCheckpoint('poisoned'), positions[2]);
    const kept = await rows<{ position: number }>(`SELECT position::int FROM ${applied} ORDER BY position`);
    assert.deepEqual(
      kept.map((row) => row.position),
      positions.slice(0, 3),
    );
  });

  it('parks an event that keeps failing and goes on after it', async () => {
    const store = await openStore('park');
    const backend = getPostgresProjectionBackend(store);
    cleanups.push(() => backend.close());
    const positions: number[] = [];
    for (let i = 1; i <= 4; i++) {
      positions.push((await store.append(`p-${i}`, [{ type: 'Added', data: { amount: i } }])).position);
    }
    const table = `"${store.schema}".parking_model`;
    const parking = defineProjection<pg.PoolClient>({
      name: 'parking',
      handles: ['Added'],
      onFailure: 'park',
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS ${table} (stream_id text NOT NULL)`);
      },
      handle: async (events, tx) => {
        for (const event of events) {
          if (event.streamId === 'p-2') throw new Error('cannot apply p-2');
          await tx.query(`INSERT INTO ${table} VALUES ($1)`, [event.streamId]);
        }
      },
    });
    const runner = createProjectionRunner(backend, [parking], { maxAttempts: 1, initialBackoffMs: 1 });
    cleanups.push(() => runner.stop());
    await runner.start();
    await runner.waitFor('parking', positions[3] as number, { timeoutMs: 5000 });
    assert.equal(runner.status('parking').parked, 1);
    const parked = await runner.parked('parking');
    assert.equal(parked.length, 1);
    assert.equal(parked[0]?.projection, 'parking');
    assert.equal(parked[0]?.event.position, positions[1]);
    assert.equal(parked[0]?.event.streamId, 'p-2');
    assert.deepEqual(parked[0]?.event.data, { amount: 2 });
    assert.ok(parked[0]?.event.recordedAt instanceof Date);
    assert.ok(parked[0]?.parkedAt instanceof Date);
    assert.match(parked[0]?.error ?? '', /cannot apply p-2/);
    assert.deepEqual(await backend.listParked('other'), []);
    assert.equal((await backend.listParked()).length, 1);
    const model = await rows<{ stream_id: string }>(`SELECT stream_id FROM ${table} ORDER BY stream_id`);
    assert.deepEqual(
      model.map((row) => row.stream_id),
      ['p-1', 'p-3', 'p-4'],
    );
  });

  it('a handler or init that catches a failed statement and goes on fails, named as such: nothing of it commits', async () => {
    const store = await openStore('swallow');
    const backend = getPostgresProjectionBackend(store);
    cleanups.push(() => backend.close());
    const positions: number[] = [];
    for (const id of ['a', 'b', 'a', 'c']) {
      positions.push((await store.append(`s-${positions.length}`, [{ type: 'Seen', data: { id } }])).position);
    }
    const table = `"${store.schema}".seen_model`;
    // "Insert, ignore the duplicate": the failed INSERT aborts the transaction, and its COMMIT rolls back.
    const insertIgnoring = async (tx: pg.PoolClient, id: string) => {
      try {
        await tx.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
      } catch {
        // a duplicate, ignored
      }
    };
    const seen = defineProjection<pg.PoolClient>({
      name: 'seen',
      handles: ['Seen'],
      onFailure: 'park',
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY)`);
      },
      handle: async (events, tx) => {
        for (const event of events) await insertIgnoring(tx, (event.data as { id: string }).id);
      },
    });
    const runner = createProjectionRunner(backend, [seen], { maxAttempts: 1, initialBackoffMs: 1 });
    cleanups.push(() => runner.stop());
    await runner.start();
    await runner.waitFor('seen', positions[3] as number, { timeoutMs: 5000 });
    const parked = await runner.parked('seen');
    assert.deepEqual(
      parked.map((p) => p.event.position),
      [positions[2]],
      'the repeated id is parked, the others applied',
    );
    assert.match(parked[0]?.error ?? '', /caught the error and went on/, parked[0]?.error);
    const model = await rows<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`);
    assert.deepEqual(
      model.map((row) => row.id),
      ['a', 'b', 'c'],
    );
    await runner.stop();

    // An init that swallows its failed statement rejects the start rather than running on a half-made model.
    const initSwallowing = defineProjection<pg.PoolClient>({
      name: 'init_swallowing',
      handles: ['Seen'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS "${store.schema}".never_made (id text)`);
        await insertIgnoring(tx, 'a');
      },
      handle: () => {},
    });
    const failing = createProjectionRunner(backend, [initSwallowing]);
    cleanups.push(() => failing.stop());
    await assert.rejects(failing.start(), /caught the error and went on/);
    const made = await rows<{ present: string | null }>(
      `SELECT to_regclass('"${store.schema}".never_made')::text AS present`,
    );
    assert.equal(made[0]?.present, null);
  });

  it('two runners of one projection at once (no lease) still apply every event exactly once', async () => {
    const store = await openStore('overlap');
    const applied = `"${store.schema}".overlap_applied`;
    const make = (runnerId: string) =>
      defineProjection<pg.PoolClient>({
        name: 'overlap',
        handles: ['Added'],
        init: async (tx) => {
          await tx.query(`CREATE TABLE IF NOT EXISTS ${applied} (position bigint NOT NULL, runner text NOT NULL)`);
        },
        handle: async (events, tx) => {
          for (const event of events) {
            await tx.query(`INSERT INTO ${applied} VALUES ($1, $2)`, [event.position, runnerId]);
          }
        },
      });
    // Created one after the other: concurrent CREATE TABLE IF NOT EXISTS may collide in PostgreSQL.
    const first = getPostgresProjectionBackend(store);
    const second = getPostgresProjectionBackend(store);
    cleanups.push(
      () => first.close(),
      () => second.close(),
    );
    const one = createProjectionRunner(first, [make('one')], { batchSize: 5, idleCheckMs: 50 });
    const two = createProjectionRunner(second, [make('two')], { batchSize: 5, idleCheckMs: 50 });
    await one.start();
    await two.start();
    cleanups.push(
      () => one.stop(),
      () => two.stop(),
    );
    await Promise.all(
      Array.from({ length: 4 }, async (_, writer) => {
        for (let i = 0; i < 50; i++) await store.append(`o-${writer}`, [{ type: 'Added', data: { amount: i } }]);
      }),
    );
    const head = await store.headPosition();
    await one.waitFor('overlap', head, { timeoutMs: 10_000 });
    await two.waitFor('overlap', head, { timeoutMs: 10_000 });
    const [summary] = await rows<{ n: number; distinct: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT position)::int AS distinct
       FROM ${applied}`,
    );
    assert.equal(summary?.n, 200);
    assert.equal(summary?.distinct, 200);
  });

  it('keeps delivering when the LISTEN connection is killed (periodic check), tells onListenError, and reconnects it', async () => {
    const store = await openStore('listen');
    const applicationName = `factline-listen-${process.pid}`;
    const told: unknown[] = [];
    const warned: unknown[] = [];
    // Reconnection waits 2 to 4 s, so that the events below can only come through the periodic check.
    const backend = getPostgresProjectionBackend(store, {
      listenApplicationName: applicationName,
      listenReconnectInitialMs: 4000,
      listenReconnectMaxMs: 4000,
      onListenError: (error) => told.push(error),
      logger: { debug: () => {}, info: () => {}, warn: (...args: unknown[]) => warned.push(args), error: () => {} },
    });
    cleanups.push(() => backend.close());
    const polling = createProjectionRunner(backend, [totals(store)], { idleCheckMs: 200 });
    cleanups.push(() => polling.stop());
    await polling.start();
    await waitUntil(() => backend.listening, 'the LISTEN connection');
    const listenPids = async () =>
      (
        await rows<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName])
      ).map((row) => row.pid);
    const [killedPid, ...others] = await listenPids();
    assert.equal(others.length, 0, 'one LISTEN connection per backend');
    await sql.query('SELECT pg_terminate_backend($1, 5000)', [killedPid]);
    await waitUntil(() => !backend.listening, 'the listener to notice the kill');
    await waitUntil(() => told.length === 1, 'the drop told to onListenError');
    assert.ok(isStorageError(told[0]));
    assert.match(
      (told[0] as Error).message,
      /the projection backend cannot LISTEN on .*: projection runners find new events by their periodic check/,
    );
    assert.equal(warned.length, 1, 'and logged at warn');

    const { position } = await store.append('l-1', [{ type: 'Added', data: { amount: 7 } }]);
    await polling.waitFor('totals', position, { timeoutMs: 1500 });
    assert.equal(backend.listening, false, 'the event came through the periodic check, not a NOTIFY');

    await waitUntil(() => backend.listening, 'the listener to reconnect', 15_000);
    assert.equal(told.length, 1, 'told once for the run of failures');
    const [newPid, ...more] = await listenPids();
    assert.equal(more.length, 0);
    assert.notEqual(newPid, killedPid);
    await polling.stop();

    // Reconnected, NOTIFY wakes a projection again (its periodic check is a minute away).
    const live = createProjectionRunner(backend, [totals(store)], { idleCheckMs: 60_000 });
    cleanups.push(() => live.stop());
    await live.start();
    await live.waitFor('totals', position, { timeoutMs: 5000 });
    await waitUntil(() => live.status('totals').state === 'running', 'the projection to go live');
    const next = await store.append('l-1', [{ type: 'Added', data: { amount: 8 } }]);
    await live.waitFor('totals', next.position, { timeoutMs: 500 });
    const [row] = await rows<{ total: number }>(`SELECT total FROM "${store.schema}".totals_model`);
    assert.equal(row?.total, 15);
    await live.stop();
  });

  it('a second runner in the same process stands by until the holder stops, then takes over', async () => {
    const store = await openStore('standby');
    const options = { leaseCheckMs: 50, idleCheckMs: 100 };
    const holder = await startPostgresProjections(store, [totals(store)], options);
    cleanups.push(() => holder.stop());
    const changes: string[] = [];
    const standby = await startPostgresProjections(store, [totals(store)], {
      ...options,
      onLeaseChange: (name, lease) => changes.push(`${name}:${lease}`),
    });
    cleanups.push(() => standby.stop());
    assert.equal(holder.status('totals').lease, 'held');
    const waiting = standby.status('totals');
    assert.equal(waiting.lease, 'standby');
    assert.equal(waiting.state, 'stopped');

    const { position } = await store.append('s-1', [{ type: 'Added', data: { amount: 2 } }]);
    // A stand-by's waitFor follows the saved checkpoint the holder writes.
    await standby.waitFor('totals', position, { timeoutMs: 5000 });
    await waitUntil(() => standby.status('totals').checkpoint >= position, 'the stand-by view of the checkpoint');
    await assert.rejects(standby.rebuild('totals'), { code: 'VALIDATION' });

    await holder.stop();
    await waitUntil(() => changes.length > 0, 'the stand-by to take over');
    assert.deepEqual(changes, ['totals:held']);
    assert.equal(standby.status('totals').lease, 'held');
    const next = await store.append('s-1', [{ type: 'Added', data: { amount: 3 } }]);
    await standby.waitFor('totals', next.position, { timeoutMs: 5000 });
    const [row] = await rows<{ total: number }>(`SELECT total FROM "${store.schema}".totals_model`);
    assert.equal(row?.total, 5);
    await standby.stop();
    assert.deepEqual(changes, ['totals:held', 'totals:standby']);
  });

  it('refuses bad definitions; an init that fails rejects the start and releases the lease', async () => {
    const store = await openStore('init');
    await assert.rejects(startPostgresProjections(store, [totals(store), totals(store)]), { code: 'VALIDATION' });
    await assert.rejects(startPostgresProjections(store, [totals(store)], { leaseCheckMs: 0 }), {
      code: 'VALIDATION',
    });
    const broken = new Error('init refused');
    const failing = { ...totals(store), init: () => Promise.reject(broken) };
    await assert.rejects(startPostgresProjections(store, [failing], { leaseCheckMs: 50 }), (error) => error === broken);
    // The lease was given back: a working definition takes it at once.
    const runner = await startPostgresProjections(store, [totals(store)], { leaseCheckMs: 50 });
    cleanups.push(() => runner.stop());
    assert.equal(runner.status('totals').lease, 'held');
    await runner.stop();
    assert.equal(runner.status('totals').lease, 'standby');
    assert.equal(runner.status('totals').state, 'stopped');
  });

  it('side-by-side versions under leases: v2 builds next to v1 in its own lease, switches, retires v1; reads find the live version', async () => {
    const store = await openStore('versions');
    const s = `"${store.schema}"`;
    // Before any projection ran (no projection tables yet), and on a schema that does not exist: version 1.
    assert.equal(await readLiveProjectionVersion(store, 'totals'), 1);
    assert.equal(await readLiveProjectionVersion(sql, 'totals', `${store.schema}_none`), 1);
    assert.equal(projectionLeaseKey(store.schema, 'totals', 1), projectionLeaseKey(store.schema, 'totals'));
    assert.notEqual(projectionLeaseKey(store.schema, 'totals', 2), projectionLeaseKey(store.schema, 'totals'));

    for (let i = 1; i <= 40; i++) await store.append(`acc-${i % 3}`, [{ type: 'Added', data: { amount: i } }]);
    const options = { leaseCheckMs: 50, idleCheckMs: 50 };
    const v1 = await startPostgresProjections(store, [totals(store)], options);
    cleanups.push(() => v1.stop());
    await v1.waitFor('totals', await store.headPosition());
    assert.equal(await v1.liveVersion('totals'), 1);

    // v2: totals and event counts per stream, in a table of its own; v1's table retired after the switch.
    const switches: string[] = [];
    const totalsV2 = defineProjection<pg.PoolClient>({
      name: 'totals',
      version: 2,
      handles: ['Added'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS ${s}.totals_v2 (
          stream_id text PRIMARY KEY, total integer NOT NULL, events integer NOT NULL)`);
      },
      reset: async (tx) => {
        await tx.query(`DELETE FROM ${s}.totals_v2`);
      },
      handle: async (events, tx) => {
        for (const event of events) {
          await tx.query(
            `INSERT INTO ${s}.totals_v2 (stream_id, total, events) VALUES ($1, $2, 1)
             ON CONFLICT (stream_id) DO UPDATE SET total = totals_v2.total + excluded.total, events = totals_v2.events + 1`,
            [event.streamId, (event.data as { amount: number }).amount],
          );
        }
      },
      retire: async (tx, previous) => {
        assert.equal(previous, 1);
        await tx.query(`DROP TABLE IF EXISTS ${s}.totals_model`);
      },
    });
    const v2 = await startPostgresProjections(store, [totalsV2], {
      ...options,
      batchSize: 5,
      maxBatchSize: 5,
      onSwitch: (name, from, to) => switches.push(`${name}:${from}->${to}`),
    });
    cleanups.push(() => v2.stop());
    // Each version holds a lease of its own, in the same process.
    assert.equal(v1.status('totals').lease, 'held');
    assert.equal(v2.status('totals').lease, 'held');
    for (let i = 41; i <= 50; i++) await store.append(`acc-${i % 3}`, [{ type: 'Added', data: { amount: i } }]);
    await waitUntil(() => v2.status('totals').liveVersion === 2, 'v2 to go live');
    assert.deepEqual(switches, ['totals:1->2']);
    assert.equal(await readLiveProjectionVersion(store, 'totals'), 2);
    assert.equal(await readLiveProjectionVersion(store.pool, 'totals', store.schema), 2);
    assert.equal(await v1.liveVersion('totals'), 2);
    const [versions] = await rows<{ live_version: number; switched_at: Date }>(
      `SELECT live_version, switched_at FROM ${s}.projection_versions WHERE name = 'totals'`,
    );
    assert.equal(versions?.live_version, 2);
    assert.ok(versions?.switched_at instanceof Date);
    const migrations = await rows<{ version: number }>(
      `SELECT version FROM ${s}.migrations WHERE component = 'projections' ORDER BY version`,
    );
    assert.deepEqual(
      migrations.map((m) => m.version),
      [1, 2, 3, 4],
    );

    const head = await store.headPosition();
    await v2.waitFor('totals', head);
    const model = await rows<{ stream_id: string; total: number; events: number }>(
      `SELECT stream_id, total, events FROM ${s}.totals_v2 ORDER BY stream_id`,
    );
    const expected = new Map<string, { total: number; events: number }>();
    for (let i = 1; i <= 50; i++) {
      const row = expected.get(`acc-${i % 3}`) ?? { total: 0, events: 0 };
      expected.set(`acc-${i % 3}`, { total: row.total + i, events: row.events + 1 });
    }
    assert.deepEqual(
      model.map((row) => [row.stream_id, row.total, row.events]),
      [...expected].sort().map(([stream, row]) => [stream, row.total, row.events]),
    );
    // Retired: v1's table is gone; v1 stopped as superseded, keeping its lease (a stand-by would refuse too).
    // Retirement runs after the switch is recorded, so the new version may be live (and caught up) a moment
    // before it has finished: wait for it rather than expect it.
    await waitUntil(
      async () =>
        (await rows(`SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'totals_model'`, [store.schema]))
          .length === 0,
      'v1 to be retired (its table dropped)',
    );
    await waitUntil(() => v1.status('totals').state === 'stopped', 'v1 to stop as superseded');
    assert.match(v1.status('totals').lastError?.message ?? '', /superseded/);
    assert.equal(v1.status('totals').lease, 'held');
    await assert.rejects(v1.waitFor('totals', head), { code: 'PROJECTION_SUPERSEDED' });

    // A v1 runner started now stands by (the lease is v1's), and its waitFor refuses rather than time out.
    const lateStandby = await startPostgresProjections(store, [totals(store)], options);
    cleanups.push(() => lateStandby.stop());
    assert.equal(lateStandby.status('totals').lease, 'standby');
    assert.equal(lateStandby.status('totals').liveVersion, 2);
    await assert.rejects(lateStandby.waitFor('totals', head), { code: 'PROJECTION_SUPERSEDED' });
    // Once it holds the lease it refuses to run v1: nothing created, nothing written.
    await v1.stop();
    const late = await waitUntil(() => {
      const status = lateStandby.status('totals');
      return status.lease === 'held' && status.lastError !== undefined && status;
    }, 'the late v1 runner to take the lease and refuse v1');
    assert.equal(late.state, 'stopped');
    assert.equal(late.version, 1);
    assert.equal(late.liveVersion, 2);
    assert.match(late.lastError?.message ?? '', /superseded/);
    assert.deepEqual(
      await rows(`SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'totals_model'`, [store.schema]),
      [],
    );
  });

  it('fails over between two processes: SIGKILL the holder mid-stream, every event applied exactly once', async () => {
    const store = await openStore('failover');
    const s = `"${store.schema}"`;
    for (let i = 0; i < 40; i++) await store.append(`f-${i % 8}`, [{ type: 'Counted', data: { i } }]);

    const children = new Map<string, Child>();
    for (const name of ['a', 'b']) {
      const child = startChild(store.schema, `${name}-${process.pid}`);
      children.set(child.id, child);
      cleanups.push(async () => child.process.kill('SIGKILL'));
    }
    await waitUntil(() => [...children.values()].every((c) => c.ready), 'both children to start', 20_000);
    const holders = [...children.values()].filter((c) => c.lease === 'held');
    assert.equal(holders.length, 1, `exactly one child holds the lease: ${JSON.stringify([...children.values()])}`);
    const active = holders[0] as Child;
    const other = [...children.values()].find((c) => c !== active) as Child;
    assert.equal(other.lease, 'standby');
    // The server agrees: one session holds the lease's advisory lock, the active child's.
    const key = BigInt(projectionLeaseKey(store.schema, 'counter'));
    const unsigned = BigInt.asUintN(64, key);
    const lockHolders = await rows<{ application_name: string }>(
      `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
      [String(unsigned >> 32n), String(unsigned & 0xffffffffn)],
    );
    assert.deepEqual(
      lockHolders.map((row) => row.application_name),
      [`factline-lease-${active.id}`],
    );

    // Appends go on throughout: two writers, 1 to 3 events per append, some not handled.
    let appending = true;
    const writers = Array.from({ length: 2 }, async (_, writer) => {
      let i = 0;
      while (appending) {
        i += 1;
        const events =
          i % 7 === 0
            ? [{ type: 'Ignored', data: { i } }]
            : Array.from({ length: 1 + (i % 3) }, () => ({ type: 'Counted', data: { writer, i } }));
        await store.append(`f-${(i * 3 + writer) % 8}`, events);
      }
    });
    const appliedBy = async (id: string) =>
      (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.counter_applied WHERE child = $1`, [id]))[0]?.n ??
      0;
    await waitUntil(async () => (await appliedBy(active.id)) >= 150, 'the active child to apply events');
    // Kill it in the middle of a batch: it has written rows, then waits on a lock the test holds.
    const hold = `${store.schema}-hold`;
    await sql.query('SELECT pg_advisory_lock(hashtext($1))', [hold]);
    await store.append('f-0', [{ type: 'Counted', data: { hold: true } }]);
    const inFlight = await waitUntil(
      async () =>
        (
          await rows<{ xid: string }>(
            `SELECT backend_xid::text AS xid FROM pg_stat_activity
              WHERE application_name = $1 AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL`,
            [`factline-pool-${active.id}`],
          )
        )[0]?.xid,
      'the active child to block mid-batch',
    );
    const killedAt = performance.now();
    active.process.kill('SIGKILL');
    await active.exited;
    await sql.query('SELECT pg_advisory_unlock(hashtext($1))', [hold]);
    await waitUntil(() => other.lease === 'held', 'the stand-by to take over', 10_000);
    const takeoverMs = performance.now() - killedAt;
    await waitUntil(async () => (await appliedBy(other.id)) >= 150, 'the new holder to apply new events');
    appending = false;
    await Promise.all(writers);
    const head = await store.headPosition();
    await waitUntil(
      async () =>
        (await rows<{ position: number }>(`SELECT position::int FROM ${s}.projections WHERE name = 'counter'`))[0]
          ?.position === head,
      'the projection to reach the head',
    );

    const log = await rows<{ stream_id: string; n: number }>(
      `SELECT stream_id, count(*)::int AS n FROM ${s}.events WHERE type = 'Counted' GROUP BY stream_id ORDER BY stream_id`,
    );
    const model = await rows<{ stream_id: string; n: number }>(
      `SELECT stream_id, n FROM ${s}.counter_model ORDER BY stream_id`,
    );
    assert.deepEqual(model, log, 'per-stream counts equal the log');
    const twice = await rows(`SELECT position FROM ${s}.counter_applied GROUP BY position HAVING count(*) > 1`);
    assert.deepEqual(twice, [], 'no position applied twice');
    const [missing] = await rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${s}.events e WHERE e.type = 'Counted'
         AND NOT EXISTS (SELECT 1 FROM ${s}.counter_applied a WHERE a.position = e.position)`,
    );
    assert.equal(missing?.n, 0, 'no event left out');
    const [extra] = await rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${s}.counter_applied a
        WHERE NOT EXISTS (SELECT 1 FROM ${s}.events e WHERE e.position = a.position AND e.type = 'Counted')`,
    );
    assert.equal(extra?.n, 0, 'only handled events applied');
    // The batch in flight at the kill was rolled back (then applied by the new holder).
    const [fate] = await rows<{ status: string }>(
      `SELECT pg_xact_status(((pg_snapshot_xmax(pg_current_snapshot())::text::bigint >> 32 << 32)
                              + $1::bigint)::text::xid8) AS status`,
      [inFlight],
    );
    assert.equal(fate?.status, 'aborted');
    const total = log.reduce((sum, row) => sum + row.n, 0);
    console.log(`# failover: ${total} events counted, takeover after ${takeoverMs.toFixed(0)} ms`);

    other.process.kill('SIGTERM');
    assert.equal(await other.exited, 0);
  });
});

interface Child {
  id: string;
  process: ChildProcess;
  ready: boolean;
  lease: 'held' | 'standby' | undefined;
  exited: Promise<number | null>;
}

const childScript = new URL('./fixtures/lease-child.ts', import.meta.url).pathname;

function startChild(schema: string, id: string): Child {
  const child = spawn(
    process.execPath,
    ['--conditions=factline-source', '--import', 'tsx', childScript, schema, id, '100'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FACTLINE_POSTGRES_URL: postgresUrl } },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const state: Child = {
    id,
    process: child,
    ready: false,
    lease: undefined,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        if (code !== 0 && signal !== 'SIGKILL') console.log(`# child ${id} exited ${code ?? signal}: ${stderr}`);
        resolve(code);
      });
    }),
  };
  let buffered = '';
  child.stdout?.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const message = JSON.parse(line) as { ready?: boolean; lease?: 'held' | 'standby' };
      if (message.lease) state.lease = message.lease;
      if (message.ready) state.ready = true;
    }
  });
  return state;
}
