import { type SnapshotStore, StoreClosedError, ValidationError } from '@factline/core';
import { checkSnapshotKey, type PreparedSnapshot, prepareSnapshot, snapshotFromStored } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { type Migration, migrate } from '../migrations.ts';
import { checkSqliteSnapshotStoreOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';

export const snapshotMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'latest snapshot per stream and name',
    // A rowid table: a state can be large, and WITHOUT ROWID suits small rows only.
    up: `
      CREATE TABLE factline_snapshots (
        stream_id TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_event_id TEXT NOT NULL,
        snapshot_version INTEGER NOT NULL,
        state TEXT NOT NULL,
        taken_at INTEGER NOT NULL,
        PRIMARY KEY (stream_id, name)
      );
    `,
  },
];

export interface SqliteSnapshotStoreOptions {
  /** The connection to keep the snapshots through (e.g. an event store's `.database`). */
  database: Database;
  /** Clock for `takenAt` when a save gives none; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * Snapshots in the SQLite file, table `factline_snapshots` (migration
 * component `snapshots`): one row per stream and name, replaced by an upsert
 * that keeps the row when it covers a later stream version. A save validates
 * and serializes the state at once and writes it on the next turn of the
 * event loop, so a command that saves one is not held up by its commit.
 *
 * @example
 * const events = getSqliteEventStore({ path: 'app.db' });
 * const snapshots = getSqliteSnapshotStore({ database: events.database });
 * await handleCommand(events, 'cart-7', command, cartDecider, {
 *   snapshots: { store: snapshots, version: 1, every: 100, onError: (error) => log.warn(error) },
 * });
 */
export function getSqliteSnapshotStore(options: SqliteSnapshotStoreOptions): SnapshotStore {
  checkSqliteSnapshotStoreOptions(options);
  const db = options.database;
  if (!db.open) throw new ValidationError({ path: 'database', message: 'is closed' });
  try {
    migrate(db, 'snapshots', snapshotMigrations);
  } catch (error) {
    throw toStorageError(error);
  }
  const now = options.now ?? Date.now;
  const select = db.prepare<[string, string]>(
    `SELECT stream_id AS streamId, name, version, last_event_id AS lastEventId,
            snapshot_version AS snapshotVersion, state, taken_at AS takenAt
       FROM factline_snapshots WHERE stream_id = ? AND name = ?`,
  );
  const upsert = db.prepare<PreparedSnapshot>(
    `INSERT INTO factline_snapshots (stream_id, name, version, last_event_id, snapshot_version, state, taken_at)
     VALUES (@streamId, @name, @version, @lastEventId, @snapshotVersion, @state, @takenAt)
     ON CONFLICT (stream_id, name) DO UPDATE SET
       version = excluded.version, last_event_id = excluded.last_event_id,
       snapshot_version = excluded.snapshot_version, state = excluded.state, taken_at = excluded.taken_at
     WHERE factline_snapshots.version <= excluded.version`,
  );
  const remove = db.prepare<[string, string]>('DELETE FROM factline_snapshots WHERE stream_id = ? AND name = ?');

  const guard = <T>(work: () => T): T => {
    if (!db.open) throw new StoreClosedError('snapshot store');
    try {
      return work();
    } catch (error) {
      throw toStorageError(error);
    }
  };

  return {
    async load(streamId, loadOptions) {
      const name = checkSnapshotKey(streamId, loadOptions, 'load');
      const row = guard(() => select.get(streamId, name)) as Parameters<typeof snapshotFromStored>[0] | undefined;
      return row === undefined ? undefined : snapshotFromStored(row);
    },
    // Not `async` up to the serialization: the state is read before the call returns.
    save(snapshot) {
      let prepared: PreparedSnapshot;
      try {
        prepared = prepareSnapshot(snapshot, now);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise<boolean>((resolve, reject) => {
        setImmediate(() => {
          try {
            resolve(guard(() => upsert.run(prepared).changes > 0));
          } catch (error) {
            reject(error);
          }
        });
      });
    },
    async delete(streamId, deleteOptions) {
      const name = checkSnapshotKey(streamId, deleteOptions, 'delete');
      return guard(() => remove.run(streamId, name).changes > 0);
    },
  };
}
