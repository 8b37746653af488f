import type pg from 'pg';
import { type PostgresMigration, quoteSchema } from '../migrations.ts';
import { toStorageError } from '../pg-errors.ts';
import type { PostgresEventStore } from '../store/postgres-event-store.ts';

/** The projection runner's tables in the store's schema: checkpoints, parked events, live versions, controls. */
export const projectionMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'projection checkpoints and parked events',
    up: (s) => `
      CREATE TABLE ${s}.projections (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE ${s}.parked (
        projection text NOT NULL,
        position bigint NOT NULL,
        event_id text NOT NULL,
        stream_id text NOT NULL,
        type text NOT NULL,
        event json NOT NULL,
        error text NOT NULL,
        parked_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, position)
      );
    `,
  },
  {
    version: 2,
    description: 'the live version of each projection',
    up: (s) => `
      CREATE TABLE ${s}.projection_versions (
        name text PRIMARY KEY,
        live_version integer NOT NULL,
        switched_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 3,
    description: 'projections paused or rebuilt from any process',
    up: (s) => `
      CREATE TABLE ${s}.projection_controls (
        name text PRIMARY KEY,
        paused boolean NOT NULL,
        rebuild_requested_at bigint,
        changed_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    description: 'a rebuild request names the version it is asked of',
    // A request recorded before (NULL) is for the version live when a runner reads it.
    up: (s) => `ALTER TABLE ${s}.projection_controls ADD COLUMN rebuild_version integer;`,
  },
];

/**
 * The version of projection `name` recorded as live in the store's schema: 1
 * until a newer version has caught up and switched (also when no projection
 * backend ever migrated the schema). For a query to pick the live version's
 * tables without a runner. Given a pool or a client rather than the store,
 * `schema` names the store's schema (default `'factline'`).
 *
 * @example
 * const live = await readLiveProjectionVersion(store, 'order_totals');
 * const table = live >= 2 ? 'order_totals_v2' : 'order_totals';
 */
export async function readLiveProjectionVersion(
  source: PostgresEventStore | pg.Pool | pg.ClientBase,
  name: string,
  schema = 'factline',
): Promise<number> {
  const isStore = 'schema' in source && 'pool' in source;
  const s = quoteSchema(isStore ? source.schema : schema);
  const queryable = isStore ? source.pool : source;
  try {
    const { rows } = await queryable.query<{ live_version: number }>(
      `SELECT live_version FROM ${s}.projection_versions WHERE name = $1`,
      [name],
    );
    return rows[0]?.live_version ?? 1;
  } catch (error) {
    // 42P01 undefined_table, 3F000 invalid_schema_name: not migrated yet, no version ever switched.
    const code = (error as { code?: unknown })?.code;
    if (code === '42P01' || code === '3F000') return 1;
    throw toStorageError(error);
  }
}
