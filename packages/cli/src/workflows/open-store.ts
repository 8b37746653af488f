import { existsSync } from 'node:fs';
import type { EventStore, SchemaRegistry } from '@factline/core';
import { CliError } from '../cli-error.ts';
import type { DatabaseTarget } from '../inspect/database-url.ts';
import { refuseOlderSchema } from '../inspect/schema-guard.ts';

/** What the workflow store migrates as it opens: the events, and the timer table its inline projection keeps. */
const workflowComponents = ['event-store', 'workflow-timers'];

/** A read-write event store on the database, keeping its workflow timer table in each append as the application's does. */
export interface WorkflowStore {
  store: EventStore;
  close(): Promise<void>;
}

/**
 * Opens the event store of the database with the timer table's inline
 * projection, so an instance's cancel drops its timers in the same commit;
 * a database an older Factline wrote is refused, never upgraded. With
 * `schemas`, the application's registry, its reads upcast as the
 * application's store does.
 *
 * @example
 * const { store, close } = await openWorkflowStore({ kind: 'sqlite', path: 'app.db' });
 */
export async function openWorkflowStore(where: DatabaseTarget, schemas?: SchemaRegistry): Promise<WorkflowStore> {
  if (where.kind === 'sqlite') {
    if (!existsSync(where.path)) throw new CliError(`cannot open SQLite file ${where.path}: no such file`);
    const { getSqliteEventStore, readSqliteSchemaVersions, sqliteTimerProjection } = await import('@factline/sqlite');
    const { openSqliteFile } = await import('../inspect/sqlite-inspector.ts');
    const reader = openSqliteFile(where.path, true);
    try {
      refuseOlderSchema(where.path, readSqliteSchemaVersions(reader), workflowComponents);
    } finally {
      reader.close();
    }
    const store = getSqliteEventStore({
      path: where.path,
      inlineProjections: [sqliteTimerProjection()],
      ...(schemas ? { schemas } : {}),
    });
    return { store, close: () => store.close() };
  }
  const { getPostgresEventStore, postgresTimerProjection, readPostgresSchemaVersions } = await import(
    '@factline/postgres'
  );
  const { connectPostgres } = await import('../inspect/postgres-inspector.ts');
  const reader = await connectPostgres(where.url, true);
  try {
    refuseOlderSchema(
      `schema ${where.schema}`,
      await readPostgresSchemaVersions(reader, where.schema),
      workflowComponents,
    );
  } finally {
    await reader.end();
  }
  const store = await getPostgresEventStore({
    connectionString: where.url,
    schema: where.schema,
    poolSize: 2,
    inlineProjections: [postgresTimerProjection({ schema: where.schema })],
    ...(schemas ? { schemas } : {}),
  });
  return { store, close: () => store.close() };
}
