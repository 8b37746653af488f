import { componentVersions, type SchemaComponentVersion } from '@factline/core/adapter';
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

export type { SchemaComponentVersion };

const components: readonly [string, readonly PostgresMigration[]][] = [
  ['event-store', eventStoreMigrations],
  ['snapshots', snapshotMigrations],
  ['projections', projectionMigrations],
  ['transport', transportMigrations],
  ['consumer', consumerMigrations],
  ['outbox', outboxMigrations],
  ['workflow-timers', timerMigrations],
];

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
    return componentVersions(components, stored);
  } catch (error) {
    throw toStorageError(error);
  }
}
