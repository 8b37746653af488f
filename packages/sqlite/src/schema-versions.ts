import { componentVersions, type SchemaComponentVersion } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { leaseMigrations } from './lease.ts';
import { consumerMigrations } from './messaging/sqlite-consumer-tables.ts';
import { transportMigrations } from './messaging/sqlite-transport-migrations.ts';
import type { Migration } from './migrations.ts';
import { outboxMigrations } from './outbox/sqlite-outbox.ts';
import { projectionMigrations } from './projections/sqlite-projection-backend.ts';
import { snapshotMigrations } from './snapshots/sqlite-snapshot-store.ts';
import { eventStoreMigrations } from './store/schema.ts';
import { toStorageError } from './store/sqlite-errors.ts';
import { timerMigrations } from './workflows/sqlite-timer-store.ts';

export type { SchemaComponentVersion };

const components: readonly [string, readonly Migration[]][] = [
  ['event-store', eventStoreMigrations],
  ['snapshots', snapshotMigrations],
  ['projections', projectionMigrations],
  ['transport', transportMigrations],
  ['consumer', consumerMigrations],
  ['outbox', outboxMigrations],
  ['leases', leaseMigrations],
  ['workflow-timers', timerMigrations],
];

/**
 * The version of each of Factline's migration components in a SQLite file,
 * next to the version this Factline would migrate it to. Reads only (it runs
 * on a read-only connection and writes nothing), so an operator's tool can
 * tell a file an older Factline wrote before any store's factory upgrades it.
 *
 * @example
 * const behind = readSqliteSchemaVersions(db).filter((c) => c.version > 0 && c.version < c.latest);
 */
export function readSqliteSchemaVersions(db: Database): SchemaComponentVersion[] {
  try {
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'factline_migrations'").get();
    const stored = new Map(
      known
        ? (
            db
              .prepare('SELECT component, MAX(version) AS version FROM factline_migrations GROUP BY component')
              .all() as { component: string; version: number }[]
          ).map((row) => [row.component, row.version])
        : [],
    );
    return componentVersions(components, stored);
  } catch (error) {
    throw toStorageError(error);
  }
}
