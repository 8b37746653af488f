import type { OperationTracer } from '@factline/core';
import { createOperationTracer } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { consumerMigrations } from '../messaging/sqlite-consumer-tables.ts';
import { transportMigrations } from '../messaging/sqlite-transport-migrations.ts';
import { type Migration, migrate } from '../migrations.ts';
import { checkSqliteTracerOptions } from '../options.ts';
import { outboxMigrations } from '../outbox/sqlite-outbox.ts';
import { eventStoreMigrations } from '../store/schema.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { sqliteTraceReader } from './sqlite-trace-reader.ts';

export interface SqliteTracerOptions {
  /** The connection to the file the store, transport, inbox, dead letters and outbox live in (never closed here). */
  database: Database;
  /** Clock, to tell a queued message in delivery from one waiting. Default `Date.now`. */
  now?: () => number;
}

/** The components whose tables a trace reads, and the migrations that give those tables their indexes. */
const tracedComponents: readonly [string, readonly Migration[]][] = [
  ['event-store', eventStoreMigrations],
  ['transport', transportMigrations],
  ['consumer', consumerMigrations],
  ['outbox', outboxMigrations],
];

/**
 * Traces business operations in a SQLite file: `traceOperation(correlationId)`
 * gives the causal tree of the events, queued messages, outbox entries, inbox
 * marks and dead letters carrying it (see `TraceTree`). The components the file
 * already holds are brought up to date first, so an older file gets the
 * indexes the trace reads through (nothing is created for the others).
 *
 * @example
 * const tracer = getSqliteTracer({ database: store.database });
 * console.log(renderTraceTree(await tracer.traceOperation('checkout-1001')));
 */
export function getSqliteTracer(options: SqliteTracerOptions): OperationTracer {
  checkSqliteTracerOptions(options);
  const db = options.database;
  try {
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'factline_migrations'").get();
    const applied = known
      ? new Set(
          (db.prepare('SELECT DISTINCT component FROM factline_migrations').all() as { component: string }[]).map(
            (r) => r.component,
          ),
        )
      : new Set<string>();
    for (const [component, migrations] of tracedComponents) {
      if (applied.has(component)) migrate(db, component, migrations);
    }
    return createOperationTracer(sqliteTraceReader(db), options.now ? { now: options.now } : {});
  } catch (error) {
    throw toStorageError(error);
  }
}
