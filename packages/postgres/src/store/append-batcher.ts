import type { PreparedAppend } from '@factline/core/adapter';

export interface AppendBatchStats {
  /** Appends received. */
  jobs: number;
  /** Batches sent (each one statement, one transaction, one commit). */
  commits: number;
  /** Most appends one batch carried. */
  largestBatch: number;
}

interface Job<R> {
  append: PreparedAppend;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for appends. Up to `maxInFlight` batches are written at once
 * (the store uses one). Appends that arrive while the slots are busy wait;
 * when a slot frees, all of them (up to `maxBatch`) go together: one round
 * trip and one WAL flush for the lot. With no concurrency, each append is
 * sent at once on its own: batching never adds latency.
 *
 * Two appends that use the same event id never share a batch: the later one
 * waits for the next, so it sees the earlier one as stored and is handled as
 * a retry or a conflict.
 */
export class AppendBatcher<R> {
  readonly stats: AppendBatchStats = { jobs: 0, commits: 0, largestBatch: 0 };
  private queue: Job<R>[] = [];
  private inFlight = 0;
  private idle: (() => void)[] = [];

  constructor(
    private readonly write: (batch: readonly PreparedAppend[]) => Promise<readonly (() => Promise<R> | R)[]>,
    private readonly maxBatch: number,
    /** Batches written at once, on separate connections (they queue on the append lock). */
    private readonly maxInFlight = 1,
  ) {}

  enqueue(append: PreparedAppend): Promise<R> {
    this.stats.jobs += 1;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ append, resolve, reject });
      this.pump();
    });
  }

  /** Resolves when nothing is queued or being written. */
  drained(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private take(): Job<R>[] {
    if (this.queue.length === 1) {
      const batch = this.queue;
      this.queue = [];
      return batch;
    }
    const batch: Job<R>[] = [];
    const rest: Job<R>[] = [];
    const ids = new Set<string>();
    for (const job of this.queue) {
      const clash = batch.length >= this.maxBatch || job.append.events.some((e) => ids.has(e.id));
      if (clash) {
        rest.push(job);
        continue;
      }
      for (const e of job.append.events) ids.add(e.id);
      batch.push(job);
    }
    this.queue = rest;
    return batch;
  }

  private pump(): void {
    if (this.queue.length === 0) {
      if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    if (this.inFlight >= this.maxInFlight) return;
    this.inFlight += 1;
    const batch = this.take();
    this.stats.commits += 1;
    if (batch.length > this.stats.largestBatch) this.stats.largestBatch = batch.length;
    const done = () => {
      this.inFlight -= 1;
      this.pump();
    };
    this.write(batch.map((job) => job.append)).then(
      (outcomes) => {
        try {
          batch.forEach((job, i) => {
            const settle = outcomes[i];
            if (!settle) {
              job.reject(new Error('append batch returned fewer outcomes than appends'));
              return;
            }
            // Follow-up reads (retry checks) run after the batch, so they never hold the next one.
            try {
              const result = settle();
              if (result instanceof Promise) result.then(job.resolve, job.reject);
              else job.resolve(result);
            } catch (error) {
              job.reject(error);
            }
          });
        } finally {
          done();
        }
      },
      (error: unknown) => {
        for (const job of batch) job.reject(error);
        done();
      },
    );
  }
}
