import { randomUUID } from 'node:crypto';
import {
  type LeasedProjection,
  type LeasedProjectionStatus,
  type ParkedEvent,
  type Projection,
  type ProjectionRunner,
  type ProjectionRunnerOptions,
  type ProjectionStatus,
  type RecordedEvent,
  StorageError,
} from '@factline/core';
import {
  createLeaseLoop,
  createProjectionRunner,
  isPassingFailure,
  leasedRunnerFacade,
  type ProjectionBackend,
  type ProjectionVersionRef,
  parseProjectionVersionKey,
  pickProjectionRunnerOptions,
  projectionVersionKey,
} from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';
import { createSqliteLease, leaseTimings, type SqliteLease } from '../lease.ts';
import { migrate } from '../migrations.ts';
import { checkSqliteProjectionsOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { type SqliteEventStore, synchronously } from '../store/sqlite-event-store.ts';
import { connectionOf, withTransactionHandle } from '../transaction-handle.ts';

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

/**
 * The projection backend on the store's SQLite file: checkpoints live in
 * `factline_projections`, written in the same transaction as the handler's
 * read-model writes (the handler gets a handle on the store's `Database`
 * that refuses every statement once the batch's transaction ended). New events are
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
    live: db.prepare<[string], { live_version: number }>(
      'SELECT live_version FROM factline_projection_versions WHERE name = ?',
    ),
    saveLive: db.prepare(
      `INSERT INTO factline_projection_versions (name, live_version, switched_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET live_version = excluded.live_version, switched_at = excluded.switched_at`,
    ),
  };
  const current = (name: string) => sql.get.get(name)?.position ?? 0;
  const live = (projection: string) => sql.live.get(projection)?.live_version ?? 1;
  /** The checkpoint is still `expected` and no newer version than `version` is live. */
  const unchanged = (name: string, expected: number, version: ProjectionVersionRef | undefined) =>
    current(name) === expected && (!version || live(version.projection) <= version.version);

  /**
   * Runs `work` in an IMMEDIATE transaction if the checkpoint is still
   * `expected` (and `version` not superseded), then saves `next`.
   */
  const guarded = (
    name: string,
    expected: number,
    next: number,
    work: () => void,
    version?: ProjectionVersionRef,
  ): boolean =>
    db
      .transaction(() => {
        if (!unchanged(name, expected, version)) return false;
        work();
        sql.save.run(name, next, Date.now());
        return true;
      })
      .immediate();

  /**
   * One turn of the event loop before each batch's transaction: every call
   * here is synchronous, so a runner catching up would otherwise run on
   * microtasks alone and hold up this process's timers and `setImmediate`
   * work (lease renewals, the store's group commit) until it caught up.
   */
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

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
    commit: async ({ name, expected, checkpoint: next, work, external, version }) => {
      await turn();
      if (external && work) {
        // Effects elsewhere (at least once): run them first, then save the checkpoint.
        if (!(await wrap(() => unchanged(name, expected, version)))) return false;
        await work(db);
        return wrap(() => guarded(name, expected, next, () => undefined, version));
      }
      return wrap(() =>
        guarded(
          name,
          expected,
          next,
          // A handle ended with the batch's transaction: nothing a handler writes later can land.
          () => work && synchronously(withTransactionHandle(db, work, `projection '${name}'`), name),
          version,
        ),
      );
    },
    park: async (name, expected, event: RecordedEvent, error: string, version) => {
      await turn();
      return wrap(() =>
        guarded(
          name,
          expected,
          event.position,
          () => {
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
          },
          version,
        ),
      );
    },
    loadLiveVersion: (projection) => wrap(() => live(projection)),
    recordLiveVersion: async (projection, version) => {
      await turn();
      return wrap(() =>
        db
          .transaction(() => {
            const before = live(projection);
            if (version > before) sql.saveLive.run(projection, version, Date.now());
            return before;
          })
          .immediate(),
      );
    },
    listParked: (name?: string) =>
      wrap(() =>
        sql.parked.all(name ?? '', name ?? '').map((row): ParkedEvent => {
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

export interface SqliteProjectionsOptions extends ProjectionRunnerOptions {
  /**
   * How long a take or renewal of a projection's lease (`factline_leases`
   * row `projection:<name>`) lasts, ms. Default 5000: five renewals, so a
   * holder stalled for a few seconds (a busy file, a long synchronous batch)
   * keeps it, and a crashed holder is replaced within about six seconds.
   */
  leaseTtlMs?: number;
  /**
   * How often the holder renews its leases and a process standing by tries
   * to take them, ms; less than `leaseTtlMs`. Default 1000 (a fifth of
   * `leaseTtlMs` when that is shorter).
   */
  leaseCheckMs?: number;
  /**
   * `false`: no leases, every projection runs here (one process per file, or
   * another way of keeping one runner). Default `true`.
   */
  lease?: boolean;
  /** Called when this runner takes (`'held'`) or gives up or loses (`'standby'`) a projection's lease. */
  onLeaseChange?: (projection: string, lease: 'held' | 'standby') => void;
}

/** A projection's status, with whether this process holds its lease. */
export type SqliteProjectionStatus = LeasedProjectionStatus;

export interface SqliteProjectionRunner extends ProjectionRunner {
  status(): SqliteProjectionStatus[];
  status(name: string): SqliteProjectionStatus;
}

/** The `factline_leases` row of a projection version's lease (each version runs side by side). */
export function projectionLeaseName(projection: string, version = 1): string {
  return `projection:${projectionVersionKey(projection, version)}`;
}

/**
 * Starts async projections on a SQLite store: creates their tables, catches
 * each up from its checkpoint, then follows new appends. Each projection runs
 * in one process at a time among those sharing the file: the one holding its
 * lease, a row of `factline_leases` that lasts `leaseTtlMs` and that the
 * holder renews every `leaseCheckMs`. The others stand by (status
 * `'stopped'`, `lease: 'standby'`) and try to take it as often; when the
 * holder stops (which deletes the row) one takes over at its next check, and
 * when it crashes or freezes, at the first check after the lease expired,
 * from the checkpoint the last committed batch saved.
 *
 * A holder runs a batch only while its lease has not expired by its own
 * clock, and gives the projection up when it has (a renewal failed, or the
 * process froze). A holder frozen for longer than the TTL in the middle of a
 * batch may still finish that one batch while its successor starts: for
 * SQL read models the checkpoint check of the batch's transaction keeps every
 * event applied exactly once; external effects (an event relay) are at least
 * once, which consumers' inboxes absorb.
 *
 * @example
 * const projections = await startSqliteProjections(store, [orderSummaries]);
 * const { position } = await store.append('order-1', [...]);
 * await projections.waitFor('order_summaries', position); // read-your-writes
 */
export async function startSqliteProjections(
  store: SqliteEventStore,
  projections: readonly Projection<Database>[],
  given: SqliteProjectionsOptions = {},
): Promise<SqliteProjectionRunner> {
  checkSqliteProjectionsOptions(given);
  // On SQLite a read and a commit never overlap (better-sqlite3 is synchronous), so batches
  // that grow while catching up buy nothing: the catch-up benchmark measured 0.42–0.50× of
  // readAll with them, 0.64× without. They stay at `batchSize` unless `maxBatchSize` is given.
  const options = { ...given, maxBatchSize: given.maxBatchSize ?? given.batchSize ?? 500 };
  const runner =
    options.lease === false
      ? unleased(
          createProjectionRunner(getSqliteProjectionBackend(store), projections, pickProjectionRunnerOptions(options)),
        )
      : createSqliteProjections(store, projections, options);
  await runner.start();
  return runner;
}

/** A runner without leases: every projection runs here. */
function unleased(runner: ProjectionRunner): SqliteProjectionRunner {
  const held = (status: ProjectionStatus): SqliteProjectionStatus => ({ ...status, lease: 'held' });
  return {
    start: () => runner.start(),
    stop: () => runner.stop(),
    status: ((name?: string) =>
      name === undefined ? runner.status().map(held) : held(runner.status(name))) as SqliteProjectionRunner['status'],
    waitFor: (name, position, waitOptions) => runner.waitFor(name, position, waitOptions),
    rebuild: (name, rebuildOptions) => runner.rebuild(name, rebuildOptions),
    resume: (name) => runner.resume(name),
    parked: (name) => runner.parked(name),
    liveVersion: (name) => runner.liveVersion(name),
  };
}

interface Lease extends LeasedProjection {
  lock: SqliteLease;
  /** Taken since start and maybe not released: deleted on stop. */
  taken: boolean;
  /** While the runner stops after the lease was given up: not taken again before. */
  stopping: Promise<void> | undefined;
}

const noop = () => undefined;

function createSqliteProjections(
  store: SqliteEventStore,
  projections: readonly Projection<Database>[],
  options: SqliteProjectionsOptions,
): SqliteProjectionRunner {
  const { ttlMs, checkMs } = leaseTimings(options);
  const backend = getSqliteProjectionBackend(store);
  // Checks the definitions together (names, duplicates) the way the runner does; never started, it
  // answers `parked` and `liveVersion`.
  const all = createProjectionRunner(backend, projections, pickProjectionRunnerOptions(options));
  const holder = randomUUID();

  const changed = (lease: Lease, state: 'held' | 'standby') => {
    try {
      options.onLeaseChange?.(lease.name, state);
    } catch {
      // The callback's own failure changes nothing.
    }
  };

  /**
   * Stops running `lease`'s projection here (after the batch in flight); the
   * abort is immediate. `lost`: the lease was lost, not given up by `stop()`
   * (a rebuild in flight then rejects as lost rather than as stopped).
   */
  const giveUp = (lease: Lease, lost = true): Promise<void> => {
    if (!lease.held) return lease.stopping ?? Promise.resolve();
    lease.held = false;
    if (lost) for (const onLost of [...lease.onLost]) onLost();
    const stopping: Promise<void> = lease.runner
      .stop()
      .then(() => {
        const status = lease.runner.status(lease.name);
        lease.checkpoint = status.checkpoint;
        lease.head = status.head;
        changed(lease, 'standby');
      })
      .finally(() => {
        if (lease.stopping === stopping) lease.stopping = undefined;
      });
    lease.stopping = stopping;
    return stopping;
  };

  /**
   * A batch runs only while the lease holds by this process's clock; the
   * holder renews it here when due (a runner catching up on the synchronous
   * database never yields to the lease timer). A lease found expired, or not
   * renewed, is given up (the runner's loop is aborted at once) and the batch
   * refused as if the checkpoint had moved; a runner that somehow goes on
   * without the lease gets errors, never a commit.
   */
  const refusal = (lease: Lease): Promise<boolean> | undefined => {
    if (lease.held) {
      let holds = false;
      try {
        holds = lease.lock.hold(checkMs);
      } catch (error) {
        options.onError?.(lease.name, error, lease.runner.status(lease.name).checkpoint);
      }
      if (holds) return undefined;
      void giveUp(lease);
      return Promise.resolve(false);
    }
    return Promise.reject(
      new StorageError(`the lease of projection '${lease.name}' is not held by this process`, { retryable: true }),
    );
  };

  const leaseBackend = (lease: Lease): ProjectionBackend<Database> => ({
    ...backend,
    commit: (batch) => refusal(lease) ?? backend.commit(batch),
    park: (name, expected, event, error, version) =>
      refusal(lease) ?? backend.park(name, expected, event, error, version),
  });

  const leases = new Map<string, Lease>();
  for (const projection of projections) {
    const version = projection.version ?? 1;
    const lease: Lease = {
      name: projection.name,
      version,
      checkpointName: projectionVersionKey(projection.name, version),
      lock: createSqliteLease({
        database: store.database,
        name: projectionLeaseName(projection.name, version),
        ttlMs,
        holder,
      }),
      runner: undefined as unknown as ProjectionRunner,
      held: false,
      taken: false,
      stopping: undefined,
      checkpoint: 0,
      head: 0,
      live: 1,
      lastError: undefined,
      onLost: new Set(),
    };
    lease.runner = createProjectionRunner(leaseBackend(lease), [projection], {
      ...pickProjectionRunnerOptions(options),
      onError: (name, error, position) => {
        lease.lastError = error;
        options.onError?.(name, error, position);
      },
    });
    leases.set(projection.name, lease);
  }
  const leaseLoop = createLeaseLoop({ checkMs, tick: (first) => tick(first), shutDown: () => shutDown() });
  const running = leaseLoop.running;
  const facade = leasedRunnerFacade({
    leases,
    all,
    loadCheckpoint: (checkpointName) => backend.loadCheckpoint(checkpointName),
    headPosition: () => store.headPosition(),
    running,
  });

  const take = async (lease: Lease, first: boolean) => {
    let taken = false;
    try {
      taken = lease.lock.acquire();
    } catch (error) {
      if (first) throw error;
      options.onError?.(lease.name, error, lease.checkpoint);
    }
    if (!taken) {
      await facade.refreshStandby(lease);
      return;
    }
    lease.held = true;
    lease.taken = true;
    lease.lastError = undefined;
    try {
      await lease.runner.start();
    } catch (error) {
      // `init` failed (or the checkpoint could not be read): let another process try.
      lease.held = false;
      await lease.runner.stop().catch(noop);
      try {
        lease.lock.release();
      } catch {
        // It expires anyway.
      }
      if (first) throw error;
      options.onError?.(lease.name, error, lease.checkpoint);
      return;
    }
    changed(lease, 'held');
  };

  /** The holder renews its leases; a lease it cannot renew, it gives up. */
  const renew = async (lease: Lease) => {
    let renewed = false;
    try {
      renewed = lease.lock.acquire();
    } catch (error) {
      options.onError?.(lease.name, error, lease.runner.status(lease.name).checkpoint);
    }
    if (!renewed) {
      void giveUp(lease);
      return;
    }
    if (lease.runner.status(lease.name).state === 'failed' && isPassingFailure(lease.lastError)) {
      // Failed on a busy file, not on the handler: go on.
      await lease.runner.resume(lease.name);
    }
  };

  const tick = async (first: boolean) => {
    for (const lease of leases.values()) {
      if (!running()) return;
      if (lease.held) await renew(lease);
      else if (!lease.stopping) await take(lease, first);
    }
  };

  const shutDown = async () => {
    for (const lease of leases.values()) {
      if (lease.held) await giveUp(lease, false);
      else {
        await lease.stopping;
        await lease.runner.stop();
      }
      if (lease.taken) {
        // Deleting the row lets a stand-by take over at its next check, not after the TTL.
        lease.taken = false;
        try {
          lease.lock.release();
        } catch {
          // It expires anyway.
        }
      }
    }
  };

  return {
    start: leaseLoop.start,
    stop: leaseLoop.stop,

    status: facade.status as SqliteProjectionRunner['status'],
    waitFor: facade.waitFor,
    rebuild: facade.rebuild,
    resume: facade.resume,
    parked: facade.parked,
    liveVersion: facade.liveVersion,
  };
}
