import { type ParkedEvent, type RecordedEvent, StorageError } from '@factline/core';
import {
  checkRebuildVersion,
  type ProjectionBackend,
  type ProjectionVersionRef,
  parseProjectionVersionKey,
  waitForAppendSignal,
} from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';
import { type Migration, migrate } from '../migrations.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { type SqliteEventStore, synchronously } from '../store/sqlite-event-store.ts';
import { connectionOf, withTransactionHandle } from '../transaction-handle.ts';
import { shareWriteLock } from '../write-share.ts';

export const projectionMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'projection checkpoints and parked events',
    up: `
      CREATE TABLE factline_projections (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE factline_parked (
        projection TEXT NOT NULL,
        position INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        type TEXT NOT NULL,
        event TEXT NOT NULL,
        error TEXT NOT NULL,
        parked_at INTEGER NOT NULL,
        PRIMARY KEY (projection, position)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'the live version of each projection',
    up: `
      CREATE TABLE factline_projection_versions (
        name TEXT PRIMARY KEY,
        live_version INTEGER NOT NULL,
        switched_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    description: 'projections paused or rebuilt from any process',
    up: `
      CREATE TABLE factline_projection_controls (
        name TEXT PRIMARY KEY,
        paused INTEGER NOT NULL,
        rebuild_requested_at INTEGER,
        changed_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    description: 'a rebuild request names the version it is asked of',
    // A request recorded before (NULL) is for the version live when a runner reads it.
    up: 'ALTER TABLE factline_projection_controls ADD COLUMN rebuild_version INTEGER;',
  },
];

const liveStatements = new WeakMap<Database, Statement<[string], { live_version: number }>>();

/**
 * The version of projection `name` recorded as live on this file: 1 until a
 * newer version has caught up and switched (also when no projection backend
 * ever opened the file). Synchronous, for a query to pick the live version's
 * tables without a runner.
 *
 * @example
 * const table = readLiveProjectionVersion(db, 'order_summaries') >= 2 ? 'order_summaries_v2' : 'order_summaries';
 */
export function readLiveProjectionVersion(source: Database | SqliteEventStore, name: string): number {
  // A handler's transaction handle stands for its connection: statements are cached per connection.
  const db = 'database' in source ? source.database : connectionOf(source);
  let statement = liveStatements.get(db);
  try {
    if (!statement) {
      statement = db.prepare<[string], { live_version: number }>(
        'SELECT live_version FROM factline_projection_versions WHERE name = ?',
      );
      liveStatements.set(db, statement);
    }
    return statement.get(name)?.live_version ?? 1;
  } catch (error) {
    // Not migrated yet: no version ever switched.
    if (!statement && /no such table/.test(String((error as Error)?.message))) return 1;
    throw toStorageError(error);
  }
}

/** What a projection's handler (or its reset) threw, carried out of the transaction apart from the driver's own errors. */
class HandlerThrew {
  constructor(readonly error: unknown) {}
}

/** Creates the backend's tables (component `projections`) and prepares its statements. */
function prepareProjectionStatements(db: Database) {
  migrate(db, 'projections', projectionMigrations);
  return {
    get: db.prepare<[string], { position: number }>('SELECT position FROM factline_projections WHERE name = ?'),
    save: db.prepare(
      `INSERT INTO factline_projections (name, position, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
    ),
    // A rebuild may park the same event again: the newer error replaces the older.
    park: db.prepare(
      `INSERT INTO factline_parked (projection, position, event_id, stream_id, type, event, error, parked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (projection, position) DO UPDATE SET event_id = excluded.event_id,
         stream_id = excluded.stream_id, type = excluded.type, event = excluded.event,
         error = excluded.error, parked_at = excluded.parked_at`,
    ),
    unparkAll: db.prepare<[string]>('DELETE FROM factline_parked WHERE projection = ?'),
    parked: db.prepare<[string, string], { projection: string; event: string; error: string; parked_at: number }>(
      `SELECT projection, event, error, parked_at FROM factline_parked
       WHERE ? = '' OR projection = ? ORDER BY projection, position`,
    ),
    live: db.prepare<[string], { live_version: number }>(
      'SELECT live_version FROM factline_projection_versions WHERE name = ?',
    ),
    control: db.prepare<
      [string],
      { paused: number; rebuild_requested_at: number | null; rebuild_version: number | null }
    >('SELECT paused, rebuild_requested_at, rebuild_version FROM factline_projection_controls WHERE name = ?'),
    // Of the version given, else of the one live now (read in the same statement).
    requestRebuild: db.prepare<{ name: string; at: number; version: number | null }>(
      `INSERT INTO factline_projection_controls (name, paused, rebuild_requested_at, rebuild_version, changed_at)
       VALUES (@name, 0, @at, COALESCE(@version,
         (SELECT live_version FROM factline_projection_versions WHERE name = @name), 1), @at)
       ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at,
         rebuild_version = excluded.rebuild_version, changed_at = excluded.changed_at`,
    ),
    clearRebuild: db.prepare(
      'UPDATE factline_projection_controls SET rebuild_requested_at = NULL, changed_at = ? WHERE name = ? AND rebuild_requested_at = ?',
    ),
    setPaused: db.prepare(
      `INSERT INTO factline_projection_controls (name, paused, changed_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at`,
    ),
    saveLive: db.prepare(
      `INSERT INTO factline_projection_versions (name, live_version, switched_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET live_version = excluded.live_version, switched_at = excluded.switched_at`,
    ),
  };
}

/**
 * The projection backend on the store's SQLite file: checkpoints live in
 * `factline_projections`, written in the same transaction as the handler's
 * read-model writes (the handler gets a handle on the store's `Database`
 * that refuses every statement once the batch's transaction ended). New events are
 * signalled in-process by the store after each commit; appends from other
 * processes are found by the runner's periodic check. Batches holding the
 * file's write lock back to back leave it free for other processes as
 * `startSqliteProjections`' do, at its default `maxWriteHoldMs`.
 */
export function getSqliteProjectionBackend(store: SqliteEventStore): ProjectionBackend<Database> {
  return createSqliteProjectionBackend(store, 'now');
}

/**
 * The backend, its tables created `'now'` or at its first call (`'first-use'`: `startSqliteProjections`,
 * whose runner checks the projections and its options first, so one it refuses has written nothing).
 */
export function createSqliteProjectionBackend(
  store: SqliteEventStore,
  tables: 'now' | 'first-use',
  options: { maxWriteHoldMs?: number } = {},
): ProjectionBackend<Database> {
  const db = store.database;
  let prepared: ReturnType<typeof prepareProjectionStatements> | undefined;
  /** The statements, the tables created first; a failed attempt is made again at the next call. */
  const sql = () => {
    prepared ??= prepareProjectionStatements(db);
    return prepared;
  };
  if (tables === 'now') {
    try {
      sql();
    } catch (error) {
      throw toStorageError(error);
    }
  }
  const current = (name: string) => sql().get.get(name)?.position ?? 0;
  const live = (projection: string) => sql().live.get(projection)?.live_version ?? 1;
  /** The checkpoint is still `expected` and no newer version than `version` is live. */
  const unchanged = (name: string, expected: number, version: ProjectionVersionRef | undefined) =>
    current(name) === expected && (!version || live(version.projection) <= version.version);

  /**
   * Before each write transaction: one turn of the event loop (every call here is synchronous: a runner
   * catching up would otherwise hold up this process's timers, its lease renewals, the store's group
   * commit), and, while batches hold the file's write lock back to back (catching up), a pause every
   * `maxWriteHoldMs` that leaves it free for other processes' writes (`write-share.ts`).
   */
  const share = shareWriteLock(db, { maxHoldMs: options.maxWriteHoldMs });
  const turn = () => share.turn();

  /**
   * Runs `work` in an IMMEDIATE transaction if the checkpoint is still
   * `expected` (and `version` not superseded), then saves `next`; the time it holds the lock is counted (`share`).
   */
  const guarded = (
    name: string,
    expected: number,
    next: number,
    work: () => void,
    version?: ProjectionVersionRef,
  ): boolean =>
    share.write(() =>
      db
        .transaction(() => {
          if (!unchanged(name, expected, version)) return false;
          work();
          sql().save.run(name, next, Date.now());
          return true;
        })
        .immediate(),
    );

  /**
   * A transaction begun by hand and left open across an `await` on this connection: a batch would join
   * it, and its rollback would undo what the runner counted as committed (its checkpoint, its waiters
   * answered). The batch waits for it to end, up to the connection's busy timeout, as for a lock another
   * connection holds, then fails as a busy file does (retryable).
   */
  const outsideForeignTransaction = async () => {
    if (!db.inTransaction) return;
    const limit = Number(db.pragma('busy_timeout', { simple: true })) || 0;
    const until = Date.now() + limit;
    while (db.inTransaction) {
      if (Date.now() >= until) {
        throw new StorageError(
          `a transaction begun by hand on the projections' connection stayed open over ${limit} ms (its busy timeout): the batch waits for it to end`,
          { retryable: true },
        );
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  };

  /** A driver's error becomes a `StorageError`; what a handler threw goes out as it was (its type, its stack). */
  const wrap = <T>(work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(error instanceof HandlerThrew ? error.error : toStorageError(error));
    }
  };

  return {
    store,
    loadCheckpoint: (name) => wrap(() => current(name)),
    commit: async ({ name, expected, checkpoint: next, work, external, version, resetParked }) => {
      await turn();
      await outsideForeignTransaction();
      const unpark = () => {
        if (resetParked) sql().unparkAll.run(name);
      };
      if (external && work) {
        // Effects elsewhere (at least once): run them first, then save the checkpoint.
        if (!(await wrap(() => unchanged(name, expected, version)))) return false;
        await work(db);
        await outsideForeignTransaction();
        return wrap(() => guarded(name, expected, next, unpark, version));
      }
      return wrap(() =>
        guarded(
          name,
          expected,
          next,
          // A handle ended with the batch's transaction: nothing a handler writes later can land.
          () => {
            unpark();
            if (!work) return;
            try {
              synchronously(withTransactionHandle(db, work, `projection '${name}'`), name);
            } catch (error) {
              throw new HandlerThrew(error);
            }
          },
          version,
        ),
      );
    },
    park: async (name, expected, event: RecordedEvent, error: string, version) => {
      await turn();
      await outsideForeignTransaction();
      return wrap(() =>
        guarded(
          name,
          expected,
          event.position,
          () => {
            sql().park.run(
              name,
              event.position,
              event.id,
              event.streamId,
              event.type,
              JSON.stringify(event),
              error,
              Date.now(),
            );
          },
          version,
        ),
      );
    },
    loadControl: (projection) =>
      wrap(() => {
        const row = sql().control.get(projection);
        return {
          paused: row?.paused === 1,
          rebuildRequestedAt: row?.rebuild_requested_at ?? null,
          rebuildVersion: row?.rebuild_version ?? null,
        };
      }),
    requestRebuild: async (projection, version) => {
      const checked = checkRebuildVersion(version);
      return wrap(() => {
        const at = Date.now();
        sql().requestRebuild.run({ name: projection, at, version: checked ?? null });
        return at;
      });
    },
    clearRebuildRequest: (projection, requestedAt) =>
      wrap(() => sql().clearRebuild.run(Date.now(), projection, requestedAt).changes === 1),
    setPaused: (projection, paused) =>
      wrap(() => {
        sql().setPaused.run(projection, paused ? 1 : 0, Date.now());
      }),
    loadLiveVersion: (projection) => wrap(() => live(projection)),
    recordLiveVersion: async (projection, version) => {
      await turn();
      return wrap(() =>
        share.write(() =>
          db
            .transaction(() => {
              const before = live(projection);
              if (version > before) sql().saveLive.run(projection, version, Date.now());
              return before;
            })
            .immediate(),
        ),
      );
    },
    listParked: (name?: string) =>
      wrap(() =>
        sql()
          .parked.all(name ?? '', name ?? '')
          .map((row): ParkedEvent => {
            const event = JSON.parse(row.event) as RecordedEvent & { recordedAt: string };
            const { name: projection, version } = parseProjectionVersionKey(row.projection);
            return {
              projection,
              version,
              event: { ...event, recordedAt: new Date(event.recordedAt) },
              error: row.error,
              parkedAt: new Date(row.parked_at),
            };
          }),
      ),
    transaction: (work) =>
      wrap(() => db.transaction(() => synchronously(withTransactionHandle(db, work, 'a projection'), 'init'))()),
    waitForAppends: (position, timeoutMs, signal) =>
      waitForAppendSignal({
        position,
        timeoutMs,
        signal,
        subscribe: (wake) => [
          store.onAppend((head) => {
            if (head > position) wake();
          }),
        ],
        headPosition: () => store.headPosition(),
      }),
  };
}
