import type pg from 'pg';
import { consumerMigrations } from './messaging/postgres-consumer-tables.ts';
import { transportMigrations } from './messaging/postgres-transport-migrations.ts';
import { type PostgresMigration, quoteSchema } from './migrations.ts';
import { outboxMigrations } from './outbox/postgres-outbox.ts';
import { toStorageError } from './pg-errors.ts';
import { projectionMigrations } from './projections/projection-tables.ts';
import { snapshotMigrations } from './snapshots/postgres-snapshot-store.ts';
import { eventStoreMigrations } from './store/schema.ts';
import { timerMigrations } from './workflows/postgres-timer-store.ts';

/** A migration component of a schema: the version its tables are at, and the one this Factline brings them to. */
export interface SchemaComponentVersion {
  /** `'event-store'`, `'transport'`, `'consumer'`, `'outbox'`, `'snapshots'`, `'projections'`, `'workflow-timers'`. */
  component: string;
  /** 0: the schema holds none of the component's tables. */
  version: number;
  /** The last version this Factline knows; opening a store of the component migrates `version` up to it. */
  latest: number;
}

const components: readonly [string, readonly PostgresMigration[]][] = [
  ['event-store', eventStoreMigrations],
  ['snapshots', snapshotMigrations],
  ['projections', projectionMigrations],
  ['transport', transportMigrations],
  ['consumer', consumerMigrations],
  ['outbox', outboxMigrations],
  ['workflow-timers', timerMigrations],
];

const latestOf = (migrations: readonly PostgresMigration[]) =>
  migrations.reduce((max, m) => Math.max(max, m.version), 0);

/**
 * The version of each of Factline's migration components in `schema`, next
 * to the version this Factline would migrate it to. Reads only (it runs in a
 * read-only transaction and creates nothing, not even the schema), so an
 * operator's tool can tell a schema an older Factline wrote before any
 * store's factory upgrades it.
 *
 * @example
 * const behind = (await readPostgresSchemaVersions(pool, 'public')).filter((c) => c.version > 0 && c.version < c.latest);
 */
export async function readPostgresSchemaVersions(
  pool: Pick<pg.Pool, 'query'>,
  schema: string,
): Promise<SchemaComponentVersion[]> {
  const quoted = quoteSchema(schema);
  try {
    const { rows: present } = await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
      `${quoted}.migrations`,
    ]);
    const stored = new Map<string, number>();
    if (present[0]?.present) {
      const { rows } = await pool.query<{ component: string; version: number }>(
        `SELECT component, MAX(version)::int AS version FROM ${quoted}.migrations GROUP BY component`,
      );
      for (const row of rows) stored.set(row.component, row.version);
    }
    return components.map(([component, migrations]) => ({
      component,
      version: stored.get(component) ?? 0,
      latest: latestOf(migrations),
    }));
  } catch (error) {
    throw toStorageError(error);
  }
}
