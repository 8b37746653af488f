import { existsSync } from 'node:fs';
import type { EventStore } from '@factline/core';
import { CliError } from '../cli-error.ts';
import type { DatabaseTarget } from '../inspect/database-url.ts';

/** A read-write event store on the database, keeping its workflow timer table in each append as the application's does. */
export interface WorkflowStore {
  store: EventStore;
  close(): Promise<void>;
}

/**
 * Opens the event store of the database with the timer table's inline
 * projection, so an instance's cancel drops its timers in the same commit.
 *
 * @example
 * const { store, close } = await openWorkflowStore({ kind: 'sqlite', path: 'app.db' });
 */
export async function openWorkflowStore(where: DatabaseTarget): Promise<WorkflowStore> {
  if (where.kind === 'sqlite') {
    if (!existsSync(where.path)) throw new CliError(`cannot open SQLite file ${where.path}: no such file`);
    const { getSqliteEventStore, sqliteTimerProjection } = await import('@factline/sqlite');
    const store = getSqliteEventStore({ path: where.path, inlineProjections: [sqliteTimerProjection()] });
    return { store, close: () => store.close() };
  }
  const { getPostgresEventStore, postgresTimerProjection } = await import('@factline/postgres');
  const store = await getPostgresEventStore({
    connectionString: where.url,
    schema: where.schema,
    poolSize: 2,
    inlineProjections: [postgresTimerProjection({ schema: where.schema })],
  });
  return { store, close: () => store.close() };
}
