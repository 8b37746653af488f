import type { Database } from 'better-sqlite3';
import { toStorageError } from './sqlite-errors.ts';

export interface WriteQueueStats {
  /** Write jobs (appends, deletes, truncations) committed or failed. */
  jobs: number;
  /** Transactions committed. `jobs / commits` is the mean group-commit batch. */
  commits: number;
  largestBatch: number;
}

export interface WriteQueue {
  /** Runs `job` inside the next write transaction; its effects commit or vanish with it. */
  enqueue<T>(job: () => T): Promise<T>;
  /** Runs every queued job now (used by `close`). */
  drain(): void;
  readonly stats: WriteQueueStats;
}

interface Job {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Group commit. Writes issued in the same turn of the event loop are committed
 * in one transaction, so N concurrent appenders pay for one fsync instead of
 * N. Each job runs inside its own SAVEPOINT: a job that throws (a version
 * conflict, a tombstoned stream) is rolled back alone and fails alone, while
 * the others in its batch commit. A sequential caller still gets one commit
 * per write, delayed by one `setImmediate`.
 */
export function createWriteQueue(db: Database, maxBatch = 256, afterCommit?: () => void): WriteQueue {
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const rollback = db.prepare('ROLLBACK');
  const savepoint = db.prepare('SAVEPOINT factline_job');
  const release = db.prepare('RELEASE factline_job');
  const rollbackTo = db.prepare('ROLLBACK TO factline_job');
  const queue: Job[] = [];
  const stats: WriteQueueStats = { jobs: 0, commits: 0, largestBatch: 0 };
  let scheduled = false;

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flush();
    });
  };

  const abort = (batch: readonly Job[], error: unknown) => {
    if (db.inTransaction) {
      try {
        rollback.run();
      } catch {
        // The transaction is gone already; nothing of it was committed.
      }
    }
    const storageError = toStorageError(error);
    for (const job of batch) job.reject(storageError);
  };

  const runBatch = (batch: Job[]) => {
    stats.jobs += batch.length;
    stats.largestBatch = Math.max(stats.largestBatch, batch.length);
    try {
      begin.run();
    } catch (error) {
      abort(batch, error);
      return;
    }
    const outcomes: Outcome[] = [];
    if (batch.length === 1) {
      // One job: the transaction is its savepoint.
      try {
        outcomes.push({ ok: true, value: (batch[0] as Job).run() });
      } catch (error) {
        try {
          rollback.run();
        } catch (rollbackError) {
          abort(batch, rollbackError);
          return;
        }
        (batch[0] as Job).reject(toStorageError(error));
        return;
      }
    } else {
      for (const job of batch) {
        try {
          savepoint.run();
          outcomes.push({ ok: true, value: job.run() });
          release.run();
        } catch (error) {
          try {
            rollbackTo.run();
            release.run();
          } catch (rollbackError) {
            abort(batch, rollbackError);
            return;
          }
          outcomes.push({ ok: false, error: toStorageError(error) });
        }
      }
    }
    try {
      commit.run();
      stats.commits += 1;
    } catch (error) {
      abort(batch, error);
      return;
    }
    afterCommit?.();
    batch.forEach((job, i) => {
      const outcome = outcomes[i] as Outcome;
      if (outcome.ok) job.resolve(outcome.value);
      else job.reject(outcome.error);
    });
  };

  const flush = () => {
    while (queue.length > 0) runBatch(queue.splice(0, maxBatch));
  };

  return {
    enqueue<T>(job: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ run: job, resolve: resolve as (value: unknown) => void, reject });
        schedule();
      });
    },
    drain: flush,
    stats,
  };
}
