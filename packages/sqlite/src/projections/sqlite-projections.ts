import {
  createProjectionRunner,
  type ParkedEvent,
  type Projection,
  type ProjectionBackend,
  type ProjectionRunner,
  type ProjectionRunnerOptions,
  type RecordedEvent,
} from '@factline/core';
import type { Database } from 'better-sqlite3';
import { migrate } from '../migrations.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { type SqliteEventStore, synchronously } from '../store/sqlite-event-store.ts';

const projectionMigrations = [
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
];

/**
 * The projection backend on the store's SQLite file: checkpoints live in
 * `factline_projections`, written in the same transaction as the handler's
 * read-model writes (the handler gets the store's `Database`). New events are
 * signalled in-process by the store after each commit; appends from other
 * processes are found by the runner's periodic check.
 */
export function getSqliteProjectionBackend(store: SqliteEventStore): ProjectionBackend<Database> {
  const db = store.database;
  try {
    migrate(db, 'projections', projectionMigrations);
  } catch (error) {
    throw toStorageError(error);
  }
  const sql = {
    get: db.prepare<[string], { position: number }>('SELECT position FROM factline_projections WHERE name = ?'),
    save: db.prepare(
      `INSERT INTO factline_projections (name, position, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
    ),
    park: db.prepare(
      `INSERT INTO factline_parked (projection, position, event_id, stream_id, type, event, error, parked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    parked: db.prepare<[string, string], { projection: string; event: string; error: string; parked_at: number }>(
      `SELECT projection, event, error, parked_at FROM factline_parked
       WHERE ? = '' OR projection = ? ORDER BY projection, position`,
    ),
  };
  const current = (name: string) => sql.get.get(name)?.position ?? 0;

  /** Runs `work` in an IMMEDIATE transaction if the checkpoint is still `expected`, then saves `next`. */
  const guarded = (name: string, expected: number, next: number, work: () => void): boolean =>
    db
      .transaction(() => {
        if (current(name) !== expected) return false;
        work();
        sql.save.run(name, next, Date.now());
        return true;
      })
      .immediate();

  const wrap = <T>(work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(toStorageError(error));
    }
  };

  return {
    store,
    loadCheckpoint: (name) => wrap(() => current(name)),
    commit: async (name, expected, next, work, external) => {
      if (external && work) {
        // Effects elsewhere (at least once): run them first, then save the checkpoint.
        if ((await wrap(() => current(name))) !== expected) return false;
        await work(db);
        return wrap(() => guarded(name, expected, next, () => undefined));
      }
      return wrap(() => guarded(name, expected, next, () => work && synchronously(work(db), name)));
    },
    park: (name, expected, event: RecordedEvent, error: string) =>
      wrap(() =>
        guarded(name, expected, event.position, () => {
          sql.park.run(
            name,
            event.position,
            event.id,
            event.streamId,
            event.type,
            JSON.stringify(event),
            error,
            Date.now(),
          );
        }),
      ),
    listParked: (name?: string) =>
      wrap(() =>
        sql.parked.all(name ?? '', name ?? '').map((row): ParkedEvent => {
          const event = JSON.parse(row.event) as RecordedEvent & { recordedAt: string };
          return {
            projection: row.projection,
            event: { ...event, recordedAt: new Date(event.recordedAt) },
            error: row.error,
            parkedAt: new Date(row.parked_at),
          };
        }),
      ),
    transaction: (work) => wrap(() => db.transaction(() => synchronously(work(db), 'init'))()),
    waitForAppends(position, timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          unsubscribe();
          signal.removeEventListener('abort', done);
          resolve();
        };
        const unsubscribe = store.onAppend((head) => {
          if (head > position) done();
        });
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener('abort', done, { once: true });
        if (signal.aborted) done();
        // Appended between the runner's last read and this subscription?
        else
          store.headPosition().then(
            (head) => head > position && done(),
            () => done(),
          );
      });
    },
  };
}

/**
 * Starts async projections on a SQLite store: creates their tables, catches
 * each up from its checkpoint, then follows new appends.
 *
 * @example
 * const projections = await startSqliteProjections(store, [orderSummaries]);
 * const { position } = await store.append('order-1', [...]);
 * await projections.waitFor('order_summaries', position); // read-your-writes
 */
export async function startSqliteProjections(
  store: SqliteEventStore,
  projections: readonly Projection<Database>[],
  options?: ProjectionRunnerOptions,
): Promise<ProjectionRunner> {
  const runner = createProjectionRunner(getSqliteProjectionBackend(store), projections, options);
  await runner.start();
  return runner;
}
