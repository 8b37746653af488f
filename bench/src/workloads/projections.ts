/**
 * Projection workloads (`npm run bench -- projection`):
 * - catch-up of an async projection into a SQL read model over a seeded log, as events/s, beside the
 *   store's own `readAll` rate on the same log (the `raw` subject: the ceiling a projection reads at);
 * - end-to-end latency from `append` resolving to the read model showing the event, under a steady
 *   1,000 appends/s.
 *
 * The catch-up workloads also run Emmett's async projections (the `emmett` subject, see
 * peers/emmett-postgres.ts and peers/emmett-sqlite.ts) on the same work: the same summary table, over an
 * Emmett-written log of the same shape. Emmett's projector hands its projection one event at a time and
 * stores its checkpoint after every event, so it runs at a few thousand events/s: its log is
 * FACTLINE_BENCH_EMMETT_PROJECTION_EVENTS events (default 100,000, at most the Factline log's size),
 * reported as the `emmett.events` extra; the rates (and so the ratios) are per event. Its consumer
 * pulls 1,000 events per batch (as Factline's runner here; Emmett's default is 100) and keeps Emmett's
 * default 50 ms pause between batches.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineProjection, type EventStore, type ProjectionRunner, type RecordedEvent } from '@factline/core';
import type { PostgresEventStore } from '@factline/postgres';
import { getSqliteEventStore, type SqliteEventStore, startSqliteProjections } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import type pg from 'pg';
import { report, type Subject, type Workload } from '../harness.ts';
import { emmettPgProjectionCatchUp } from '../peers/emmett-postgres.ts';
import { emmettSqliteProjectionCatchUp, emmettSqliteProjectionLog } from '../peers/emmett-sqlite.ts';
import { orderData } from './payload.ts';
import { dropSchema, freshSchema, loadFactlinePostgres, pgUnavailable, pgUrl, withAdmin } from './postgres.ts';
import { SCAN, seeded } from './postgres-scan.ts';

const EVENTS = Number(process.env.FACTLINE_BENCH_PROJECTION_EVENTS ?? 1_000_000);
const EMMETT_EVENTS = Number(process.env.FACTLINE_BENCH_EMMETT_PROJECTION_EVENTS ?? 100_000);
/** Emmett's consumer: Factline's batch size here, Emmett's default pause (50 ms) between batches. */
const EMMETT_PULLING = { batchSize: 1000 };
const dir = join(tmpdir(), `factline-bench-projections-${process.pid}`);
let seededPath: string | undefined;
let trialCounter = 0;

export function removeProjectionFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The log: EVENTS events over 1,000 order streams, 1,000 per append; written once per run. */
async function seededLog(): Promise<string> {
  if (seededPath) return seededPath;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'log.db');
  const store = getSqliteEventStore({ path, synchronous: 'normal' });
  const perAppend = 1000;
  for (let i = 0; i < EVENTS / perAppend; i++) {
    await store.append(
      `order-${i % 1000}`,
      Array.from({ length: perAppend }, (_, j) => ({ type: 'ItemAdded', data: orderData(j) })),
    );
  }
  await store.close();
  seededPath = path;
  return path;
}

/** A per-order summary table (item count and total), the shape of the seed's order_summaries. */
function summaries(name: string) {
  const table = `bench_${name}`;
  return defineProjection<Database>({
    name,
    handles: ['ItemAdded'],
    init: (db) => {
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${table} (order_id TEXT PRIMARY KEY, items INTEGER NOT NULL, total REAL NOT NULL)`,
      );
    },
    reset: (db) => {
      db.exec(`DELETE FROM ${table}`);
    },
    handle: (events: readonly RecordedEvent[], db) => {
      const upsert = db.prepare(
        `INSERT INTO ${table} (order_id, items, total) VALUES (?, 1, ?)
         ON CONFLICT (order_id) DO UPDATE SET items = items + 1, total = total + excluded.total`,
      );
      for (const event of events) upsert.run(event.streamId, (event.data as { total: number }).total);
    },
  });
}

const catchUp: Subject = {
  name: 'factline',
  trial: () => {
    let store: SqliteEventStore;
    let runner: ProjectionRunner;
    const name = `catchup_${process.pid}_${++trialCounter}`;
    return {
      setup: async () => {
        store = getSqliteEventStore({ path: await seededLog() });
      },
      run: async () => {
        runner = await startSqliteProjections(store, [summaries(name)], { batchSize: 1000 });
        await runner.waitFor(name, await store.headPosition(), { timeoutMs: 600_000 });
        return EVENTS;
      },
      teardown: async () => {
        await runner.stop();
        store.database.exec(
          `DROP TABLE IF EXISTS bench_${name}; DELETE FROM factline_projections WHERE name = '${name}'`,
        );
        await store.close();
      },
    };
  },
};

const readAllRate: Subject = {
  name: 'raw',
  trial: () => {
    let store: SqliteEventStore;
    return {
      setup: async () => {
        store = getSqliteEventStore({ path: await seededLog() });
      },
      run: async () => {
        let n = 0;
        for await (const _ of store.readAll({ batchSize: 1000 })) n++;
        return n;
      },
      teardown: () => store.close(),
    };
  },
};

let emmettLog: Promise<string> | undefined;

/** Emmett's SQLite log: min(EVENTS, EMMETT_EVENTS) events written through Emmett, once per run. */
function emmettSqliteLog(events: number): Promise<string> {
  emmettLog ??= (async () => {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'emmett-log.db');
    const started = Date.now();
    const why = await emmettSqliteProjectionLog(path, events, 1000);
    if (why) throw new Error(`Emmett's SQLite projection log: ${why}`);
    console.log(`# projection-sqlite-catchup: Emmett's log of ${events} events written in ${Date.now() - started} ms`);
    return path;
  })();
  return emmettLog;
}

/**
 * Emmett's async projection (`consumer.processor({ projection: sqliteRawSQLProjection(...) })`) catching
 * up the same summary table over Emmett's own SQLite log; see `emmettSqliteProjectionCatchUp`.
 */
const emmettSqliteCatchUp: Subject = {
  name: 'emmett',
  trial: async () => {
    const events = Math.min(EVENTS, EMMETT_EVENTS);
    const path = await emmettSqliteLog(events).catch((error: Error) => error.message);
    if (!path.endsWith('.db')) return path;
    const trial = await emmettSqliteProjectionCatchUp(path, {
      events,
      streams: 1000,
      table: `bench_emmett_${process.pid}_${++trialCounter}`,
      pulling: EMMETT_PULLING,
    });
    if (typeof trial === 'string') return trial;
    const extras = trial.extras;
    return { ...trial, extras: () => ({ ...extras?.(), events }) };
  },
};

/**
 * Appends at `rate`/s for `seconds` (one event each, 100 streams); each append's latency runs from
 * `append` resolving to the projection having applied it.
 */
async function pacedAppends(
  store: Pick<EventStore, 'append'>,
  runner: Pick<ProjectionRunner, 'waitFor'>,
  name: string,
  rate: number,
  seconds: number,
): Promise<{ total: number; elapsed: number; latencies: number[] }> {
  const latencies: number[] = [];
  const total = rate * seconds;
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(
      (async () => {
        const { position } = await store.append(`order-${i % 100}`, [{ type: 'ItemAdded', data: orderData(i) }]);
        const appended = performance.now();
        await runner.waitFor(name, position, { timeoutMs: 10_000 });
        latencies.push(performance.now() - appended);
      })(),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  return { total, elapsed, latencies };
}

/** Appends at `rate`/s for `seconds`; each append's latency is append resolved → read model shows it. */
async function latencyRun(
  rate: number,
  seconds: number,
): Promise<{ units: number; seconds: number; latencies: number[] }> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `latency-${++trialCounter}.db`);
  const store = getSqliteEventStore({ path });
  const name = 'latency';
  const runner = await startSqliteProjections(store, [summaries(name)], { batchSize: 1000 });
  const { total, elapsed, latencies } = await pacedAppends(store, runner, name, rate, seconds);
  await runner.stop();
  await store.close();
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  return { units: total, seconds: elapsed, latencies };
}

// ---- PostgreSQL ----

/** The same per-order summary table in PostgreSQL, in the store's schema. */
function pgSummaries(schema: string, name: string) {
  const table = `"${schema}".bench_${name}`;
  return defineProjection<pg.PoolClient>({
    name,
    handles: ['ItemAdded'],
    init: async (tx) => {
      await tx.query(
        `CREATE TABLE IF NOT EXISTS ${table} (order_id text PRIMARY KEY, items integer NOT NULL, total numeric NOT NULL)`,
      );
    },
    reset: async (tx) => {
      await tx.query(`DELETE FROM ${table}`);
    },
    handle: async (events: readonly RecordedEvent[], tx) => {
      // One statement per batch: the per-order increments folded in JavaScript, then upserted together.
      const byOrder = new Map<string, { items: number; total: number }>();
      for (const event of events) {
        const sum = byOrder.get(event.streamId) ?? { items: 0, total: 0 };
        sum.items += 1;
        sum.total += (event.data as { total: number }).total;
        byOrder.set(event.streamId, sum);
      }
      await tx.query(
        `INSERT INTO ${table} (order_id, items, total)
         SELECT * FROM unnest($1::text[], $2::integer[], $3::numeric[])
         ON CONFLICT (order_id) DO UPDATE SET items = ${table}.items + excluded.items, total = ${table}.total + excluded.total`,
        [[...byOrder.keys()], [...byOrder.values()].map((v) => v.items), [...byOrder.values()].map((v) => v.total)],
      );
    },
  });
}

function pgTrial(
  work: (store: PostgresEventStore, schema: string) => Promise<number>,
  cleanup?: (store: PostgresEventStore) => Promise<void>,
) {
  return async () => {
    const reason = await pgUnavailable();
    if (reason) return reason;
    const factline = await loadFactlinePostgres();
    if (typeof factline === 'string') return factline;
    let store: PostgresEventStore;
    let schema = '';
    return {
      setup: async () => {
        schema = await seeded('factline');
        store = await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
      },
      run: () => work(store, schema),
      teardown: async () => {
        await cleanup?.(store);
        await store.close();
      },
    };
  };
}

const pgCatchUpName = () => `catchup_${process.pid}_${++trialCounter}`;
let pgCatchUpCurrent = '';

const pgCatchUp: Subject = {
  name: 'factline',
  trial: pgTrial(
    async (store) => {
      const factline = (await loadFactlinePostgres()) as typeof import('@factline/postgres');
      pgCatchUpCurrent = pgCatchUpName();
      const runner = await factline.startPostgresProjections(store, [pgSummaries(store.schema, pgCatchUpCurrent)], {
        batchSize: 1000,
      });
      await runner.waitFor(pgCatchUpCurrent, await store.headPosition(), { timeoutMs: 600_000 });
      await runner.stop();
      return SCAN;
    },
    async (store) => {
      await store.pool.query(`DROP TABLE IF EXISTS "${store.schema}".bench_${pgCatchUpCurrent}`);
      await store.pool.query(`DELETE FROM "${store.schema}".projections WHERE name = $1`, [pgCatchUpCurrent]);
    },
  ),
};

const pgReadAll: Subject = {
  name: 'raw',
  trial: pgTrial(async (store) => {
    let n = 0;
    for await (const _ of store.readAll({ batchSize: 1000 })) n++;
    return n;
  }),
};

/**
 * Emmett's async projection (`consumer.projector({ projection: postgreSQLRawSQLProjection(...) })`)
 * catching up the same summary table over an Emmett log of the postgres-readall shape, in a fresh schema
 * per trial (seeded untimed, dropped at teardown); see `emmettPgProjectionCatchUp`.
 */
const pgEmmettCatchUp: Subject = {
  name: 'emmett',
  trial: async () => {
    const reason = await pgUnavailable();
    if (reason) return reason;
    const events = Math.min(SCAN, EMMETT_EVENTS);
    const schema = freshSchema('emmett_projection');
    await withAdmin((c) => c.query(`CREATE SCHEMA ${schema}`));
    const trial = await emmettPgProjectionCatchUp(pgUrl, schema, {
      events,
      streams: 1000,
      pulling: EMMETT_PULLING,
    }).catch((error: Error) => error.message);
    if (typeof trial === 'string') {
      await dropSchema(schema);
      return trial;
    }
    return {
      ...trial,
      extras: () => ({ events }),
      teardown: async () => {
        try {
          await trial.teardown?.();
        } finally {
          await dropSchema(schema);
        }
      },
    };
  },
};

/** Latency on PostgreSQL: the writer and the runner use separate store instances, so only NOTIFY (or the idle check) wakes the runner. */
async function pgLatencyRun(rate: number, seconds: number, sameStore: boolean) {
  const factline = (await loadFactlinePostgres()) as typeof import('@factline/postgres');
  const schema = `bench_latency_${process.pid}_${++trialCounter}`;
  const writer = await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
  const reader = sameStore ? writer : await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
  const name = 'latency';
  const runner = await factline.startPostgresProjections(reader, [pgSummaries(schema, name)], { batchSize: 1000 });
  const { total, elapsed, latencies } = await pacedAppends(writer, runner, name, rate, seconds);
  await runner.stop();
  if (!sameStore) await reader.close();
  await writer.dropSchema();
  return { units: total, seconds: elapsed, latencies };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

function latencySubject(
  workload: string,
  name: string,
  run: () => Promise<{ units: number; seconds: number; latencies: number[] }>,
): Subject {
  return {
    name,
    trial: async () => {
      if (workload.includes('postgres')) {
        const reason = await pgUnavailable();
        if (reason) return reason;
      }
      return {
        run: async () => {
          const result = await run();
          const sorted = [...result.latencies].sort((a, b) => a - b);
          report(workload, `${name}.p50`, percentile(sorted, 50) * 1000, 'us');
          report(workload, `${name}.p99`, percentile(sorted, 99) * 1000, 'us');
          report(workload, `${name}.max`, (sorted[sorted.length - 1] ?? 0) * 1000, 'us');
          return { units: result.units, seconds: result.seconds };
        },
      };
    },
  };
}

export const projectionWorkloads: Workload[] = [
  {
    name: 'projection-sqlite-catchup',
    description: `async projection catch-up of a ${EVENTS.toLocaleString('en')}-event SQLite log into a per-order summary table (upsert per event, batches of 1,000, checkpoint in each batch's transaction); raw = the store's own readAll of the same log; emmett = Emmett's async projection (sqliteRawSQLProjection on its consumer: upsert per event, checkpoint write per event, batches of 1,000 in one transaction, 50 ms between batches) over a ${Math.min(EVENTS, EMMETT_EVENTS).toLocaleString('en')}-event Emmett log of the same shape`,
    unit: 'events/s',
    subjects: [catchUp, readAllRate, emmettSqliteCatchUp],
  },
  {
    name: 'projection-sqlite-latency',
    description:
      'append → read model shows it, under a steady 1,000 appends/s for 5 s (in-process append signal; SQLite synchronous=FULL); figures in µs',
    unit: 'events/s',
    repeat: 1,
    subjects: [latencySubject('projection-sqlite-latency', 'factline', () => latencyRun(1000, 5))],
  },
  {
    name: 'projection-postgres-catchup',
    description: `async projection catch-up of a ${SCAN.toLocaleString('en')}-event PostgreSQL log (the postgres-readall log) into a per-order summary table (one upsert statement per batch of 1,000, checkpoint in the batch's transaction); raw = the store's own readAll of the same log; emmett = Emmett's async projection (postgreSQLRawSQLProjection on its consumer's projector: upsert per event, checkpoint stored per event, batches of 1,000 in one transaction, 50 ms between batches) over a ${Math.min(SCAN, EMMETT_EVENTS).toLocaleString('en')}-event Emmett log of the same shape`,
    unit: 'events/s',
    subjects: [pgCatchUp, pgReadAll, pgEmmettCatchUp],
  },
  {
    name: 'projection-postgres-latency',
    description:
      'append → read model shows it, under a steady 1,000 appends/s for 5 s; same-store: the runner is woken by the store in-process; notify: the runner uses another store instance, so only NOTIFY wakes it; figures in µs',
    unit: 'events/s',
    repeat: 1,
    subjects: [
      latencySubject('projection-postgres-latency', 'same-store', () => pgLatencyRun(1000, 5, true)),
      latencySubject('projection-postgres-latency', 'notify', () => pgLatencyRun(1000, 5, false)),
    ],
  },
];
