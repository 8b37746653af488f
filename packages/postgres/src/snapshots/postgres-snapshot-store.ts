import { type SnapshotStore, StoreClosedError } from '@factline/core';
import {
  assertIntegerOption,
  checkSnapshotKey,
  type PreparedSnapshot,
  prepareSnapshot,
  type StoredSnapshot,
  snapshotFromStored,
} from '@factline/core/adapter';
import type pg from 'pg';
import { migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresSnapshotStoreOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';

export const snapshotMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'latest snapshot per stream and name',
    up: (s) => `
      CREATE TABLE ${s}.snapshots (
        stream_id text NOT NULL,
        name text NOT NULL,
        version bigint NOT NULL,
        last_event_id text NOT NULL,
        snapshot_version integer NOT NULL,
        -- json, not jsonb: kept as written, and never parsed on the way in or out.
        state json NOT NULL,
        taken_at timestamptz NOT NULL,
        PRIMARY KEY (stream_id, name)
      );
    `,
  },
];

export interface PostgresSnapshotStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** A pool to use (e.g. an event store's `.pool`); never ended here. */
  pool?: pg.Pool;
  /** The schema holding the table; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool opened from `connectionString`. Default 4. */
  poolSize?: number;
  /** Clock for `takenAt` when a save gives none; defaults to `Date.now`. */
  now?: () => number;
}

export interface PostgresSnapshotStore extends SnapshotStore {
  readonly pool: pg.Pool;
  /** Ends the pool if the store opened it; later calls throw `StoreClosedError`. */
  close(): Promise<void>;
}

/**
 * Snapshots in PostgreSQL, table `<schema>.snapshots` (migration component
 * `snapshots`): one row per stream and name, replaced by an upsert that
 * keeps the row when it covers a later stream version, so concurrent saves
 * leave the newest whatever their order.
 *
 * @example
 * const events = await getPostgresEventStore({ connectionString });
 * const snapshots = await getPostgresSnapshotStore({ pool: events.pool });
 * await handleCommand(events, 'cart-7', command, cartDecider, {
 *   snapshots: { store: snapshots, version: 1, every: 100, onError: (error) => log.warn(error) },
 * });
 */
export async function getPostgresSnapshotStore(options: PostgresSnapshotStoreOptions): Promise<PostgresSnapshotStore> {
  checkPostgresSnapshotStoreOptions(options);
  const schema = options.schema ?? 'factline';
  const s = quoteSchema(schema);
  const poolSize = assertIntegerOption(options.poolSize, 'poolSize', 1) ?? 4;
  const now = options.now ?? Date.now;
  const { pool, own } = await migratedPool({
    pool: options.pool,
    connectionString: options.connectionString,
    poolSize,
    schema,
    component: 'snapshots',
    migrations: snapshotMigrations,
  });
  let closed = false;
  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) => {
    if (closed) throw new StoreClosedError('snapshot store');
    try {
      return await pool.query<R>({ name: statementName(schema, `snapshot-${name}`), text, values });
    } catch (error) {
      throw toStorageError(error);
    }
  };
  const write = async (row: PreparedSnapshot) => {
    const { rowCount } = await query(
      'save',
      `INSERT INTO ${s}.snapshots (stream_id, name, version, last_event_id, snapshot_version, state, taken_at)
       VALUES ($1, $2, $3, $4, $5, $6::json, $7)
       ON CONFLICT (stream_id, name) DO UPDATE SET
         version = excluded.version, last_event_id = excluded.last_event_id,
         snapshot_version = excluded.snapshot_version, state = excluded.state, taken_at = excluded.taken_at
       WHERE ${s}.snapshots.version <= excluded.version`,
      [row.streamId, row.name, row.version, row.lastEventId, row.snapshotVersion, row.state, new Date(row.takenAt)],
    );
    return rowCount === 1;
  };
  return {
    pool,
    async load(streamId, loadOptions) {
      const name = checkSnapshotKey(streamId, loadOptions, 'load');
      const { rows } = await query<StoredSnapshot>(
        'load',
        `SELECT stream_id AS "streamId", name, version, last_event_id AS "lastEventId",
                snapshot_version AS "snapshotVersion", state::text AS state, taken_at AS "takenAt"
           FROM ${s}.snapshots WHERE stream_id = $1 AND name = $2`,
        [streamId, name],
      );
      return rows[0] === undefined ? undefined : snapshotFromStored(rows[0]);
    },
    // Not `async` up to the serialization: the state is read before the call returns.
    save(snapshot) {
      try {
        return write(prepareSnapshot(snapshot, now));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    async delete(streamId, deleteOptions) {
      const name = checkSnapshotKey(streamId, deleteOptions, 'delete');
      const { rowCount } = await query('delete', `DELETE FROM ${s}.snapshots WHERE stream_id = $1 AND name = $2`, [
        streamId,
        name,
      ]);
      return rowCount === 1;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (own) await pool.end().catch(() => undefined);
    },
  };
}
