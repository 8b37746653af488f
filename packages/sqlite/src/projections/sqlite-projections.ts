import type {
  LeasedProjectionStatus,
  Projection,
  ProjectionRunner,
  ProjectionRunnerOptions,
  ProjectionStatus,
} from '@factline/core';
import {
  createLeasedProjections,
  createProjectionRunner,
  pickProjectionRunnerOptions,
  projectionLeaseName,
} from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { createSqliteLeases, leaseTimings } from '../lease.ts';
import { checkSqliteProjectionsOptions } from '../options.ts';
import type { SqliteEventStore } from '../store/sqlite-event-store.ts';
import { createSqliteProjectionBackend } from './sqlite-projection-backend.ts';

export { getSqliteProjectionBackend, readLiveProjectionVersion } from './sqlite-projection-backend.ts';

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
  /**
   * How long batches may hold the file's write lock back to back (catching
   * up) before the next one waits until the lock has been free for 150 ms, so
   * that a write from another process waiting on it (`factline projections
   * pause`, another instance's append) gets in before its busy timeout, ms.
   * A runner that leaves the lock free at least as long as it holds it (live,
   * between appends) never waits. Default 1000; keep it, plus the longest
   * batch, below the busy timeout of the other processes writing to the file.
   */
  maxWriteHoldMs?: number;
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
export { projectionLeaseName };

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
          createProjectionRunner(
            createSqliteProjectionBackend(store, 'first-use', { maxWriteHoldMs: options.maxWriteHoldMs }),
            projections,
            pickProjectionRunnerOptions(options),
          ),
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

function createSqliteProjections(
  store: SqliteEventStore,
  projections: readonly Projection<Database>[],
  options: SqliteProjectionsOptions,
): SqliteProjectionRunner {
  const { ttlMs, checkMs } = leaseTimings(options);
  const leases = createSqliteLeases({ database: store.database, ttlMs });
  return createLeasedProjections({
    backend: createSqliteProjectionBackend(store, 'first-use', { maxWriteHoldMs: options.maxWriteHoldMs }),
    projections,
    options,
    leases,
    checkMs,
    headPosition: () => store.headPosition(),
    onLeaseChange: options.onLeaseChange,
    close: () => leases.close(),
  });
}
