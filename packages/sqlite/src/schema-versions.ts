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

/** A migration component of a database: the version its tables are at, and the one this Factline brings them to. */
export interface SchemaComponentVersion {
  /** `'event-store'`, `'transport'`, `'consumer'`, `'outbox'`, `'snapshots'`, `'projections'`, `'leases'`, `'workflow-timers'`. */
  component: string;
  /** 0: the database holds none of the component's tables. */
  version: number;
  /** The last version this Factline knows; opening a store of the component migrates `version` up to it. */
  latest: number;
}

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

const latestOf = (migrations: readonly Migration[]) => migrations.reduce((max, m) => Math.max(max, m.version), 0);

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
    return components.map(([component, migrations]) => ({
      component,
      version: stored.get(component) ?? 0,
      latest: latestOf(migrations),
    }));
  } catch (error) {
    throw toStorageError(error);
  }
}
