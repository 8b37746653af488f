import type { OperationTracer } from '@factline/core';
import { createOperationTracer } from '@factline/core/adapter';
import type pg from 'pg';
import { consumerMigrations } from '../messaging/postgres-consumer-tables.ts';
import { transportMigrations } from '../messaging/postgres-transport-migrations.ts';
import { migratedPool, migratePostgres, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresTracerOptions } from '../options.ts';
import { outboxMigrations } from '../outbox/postgres-outbox.ts';
import { toStorageError } from '../pg-errors.ts';
import { eventStoreMigrations } from '../store/schema.ts';
import { postgresTraceReader } from './postgres-trace-reader.ts';

export interface PostgresTracerOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** A pool to use (e.g. a store's `.pool`); never ended here. */
  pool?: pg.Pool;
  /** The schema holding the store, transport, inbox, dead letters and outbox. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool opened from `connectionString`. Default 2. */
  poolSize?: number;
  /** Clock, to tell a queued message in delivery from one waiting. Default `Date.now`. */
  now?: () => number;
}

export interface PostgresTracer extends OperationTracer {
  /** Ends the pool if the tracer opened it. */
  close(): Promise<void>;
}

/** The components whose tables a trace reads, and the migrations that give those tables their indexes. */
const tracedComponents: readonly [string, readonly PostgresMigration[]][] = [
  ['event-store', eventStoreMigrations],
  ['transport', transportMigrations],
  ['consumer', consumerMigrations],
  ['outbox', outboxMigrations],
];

/**
 * Traces business operations in a PostgreSQL schema: `traceOperation(correlationId)`
 * gives the causal tree of the events, queued messages, outbox entries, inbox
 * marks and dead letters carrying it (see `TraceTree`). The components the
 * schema already holds are brought up to date first, so an older schema gets
 * the indexes the trace reads through (building one on a large table takes a
 * while, once); nothing is created for the others.
 *
 * @example
 * const tracer = await getPostgresTracer({ pool: store.pool, schema: 'factline' });
 * console.log(renderTraceTree(await tracer.traceOperation('checkout-1001')));
 */
export async function getPostgresTracer(options: PostgresTracerOptions): Promise<PostgresTracer> {
  checkPostgresTracerOptions(options);
  const schema = options.schema ?? 'factline';
  const quoted = quoteSchema(schema);
  // Opens (or takes) the pool; makes sure the schema's migrations table exists (component `tracer` has no steps).
  const { pool, own } = await migratedPool({
    pool: options.pool,
    connectionString: options.connectionString,
    poolSize: options.poolSize ?? 2,
    schema,
    component: 'tracer',
    migrations: [],
  });
  try {
    const { rows } = await pool.query<{ component: string }>(`SELECT DISTINCT component FROM ${quoted}.migrations`);
    const applied = new Set(rows.map((r) => r.component));
    for (const [component, migrations] of tracedComponents) {
      if (applied.has(component)) await migratePostgres(pool, schema, component, migrations);
    }
  } catch (error) {
    if (own) await pool.end().catch(() => undefined);
    throw toStorageError(error);
  }
  const tracer = createOperationTracer(postgresTraceReader(pool, quoted), options.now ? { now: options.now } : {});
  let closed = false;
  return {
    traceOperation: (correlationId, traceOptions) => tracer.traceOperation(correlationId, traceOptions),
    async close() {
      if (closed) return;
      closed = true;
      if (own) await pool.end();
    },
  };
}
