import { type Logger, log } from '../../logging/logger.ts';
import { schemaSourceOf } from '../../schema/schema-store.ts';
import type { EventStore } from '../../store/types.ts';
import { sharedObservation } from '../../tracing/metrics.ts';
import { statusOf, type Worker } from './worker.ts';

/**
 * The age of the oldest event past `checkpoint` (the one the projection waits
 * longest to apply), in seconds; 0 when none is there. One indexed read, of
 * the events as stored: only `recordedAt` is wanted, and an event the schemas
 * cannot decode (the one a stalled projection is stuck on) still has its age.
 */
async function oldestUnappliedAge(store: EventStore, checkpoint: number, now: number): Promise<number> {
  const stored = schemaSourceOf(store)?.store ?? store;
  for await (const event of stored.readAll({ after: checkpoint, limit: 1 })) {
    return Math.max(0, (now - event.recordedAt.getTime()) / 1000);
  }
  return 0;
}

/** One running runner, as the process's projection points read it. */
interface ObservedRunner {
  workers: () => Iterable<Worker<unknown>>;
  store: EventStore;
  logger: Logger | undefined;
  now: () => number;
}

/**
 * The runners of this process. Two runners may run a projection of the same
 * name (versions side by side, one per store), whose points carry the same
 * attributes: one callback reports them all, two would each replace the
 * other's value.
 */
const runners = new Set<ObservedRunner>();

/** The lag of one projection name over the runners, as read at one collection. */
interface NameLag {
  lag: number;
  seconds: number;
  /** An age read failed: the age point is left out (the rest may not hold the oldest). */
  failed: boolean;
}

const hold = sharedObservation(
  (i) => [i.projectionLag, i.projectionLagDuration],
  async (i, result) => {
    const byName = new Map<string, NameLag>();
    await Promise.all([...runners].map((runner) => readRunner(runner, byName)));
    for (const [name, read] of byName) {
      const attributes = { 'factline.projection.name': name };
      result.observe(i.projectionLag, read.lag, attributes);
      if (!read.failed) result.observe(i.projectionLagDuration, read.seconds, attributes);
    }
  },
);

/** Folds one runner's projections into `byName`: the most lag and the oldest age of any runner. */
async function readRunner(runner: ObservedRunner, byName: Map<string, NameLag>): Promise<void> {
  const at = runner.now();
  for (const w of runner.workers()) {
    const status = statusOf(w);
    const name = w.projection.name;
    let read = byName.get(name);
    if (read === undefined) {
      read = { lag: 0, seconds: 0, failed: false };
      byName.set(name, read);
    }
    read.lag = Math.max(read.lag, status.lag);
    if (status.lag === 0) continue;
    const seconds = await oldestUnappliedAge(runner.store, status.checkpoint, at).catch((err: unknown) => {
      log(runner.logger, 'warn', { err, projection: name }, 'projection lag: reading the store failed');
      return undefined;
    });
    if (seconds === undefined) read.failed = true;
    else read.seconds = Math.max(read.seconds, seconds);
  }
}

/**
 * Registers a runner's lag gauges, read at each collection from its workers'
 * status (`factline.projection.lag`, events) and one read per lagging
 * projection (`factline.projection.lag.duration`, s): no cost per event.
 * Runners of a projection of the same name share its points: the most lag
 * and the oldest age of any. A failed read is told to `logger` and leaves
 * that name's age out of this collection. Returns their removal; a no-op
 * while no meter provider is registered.
 *
 * @example
 * const unobserve = observeProjectionLag(() => workers.values(), backend.store, ctx.logger);
 */
export function observeProjectionLag<Tx>(
  workers: () => Iterable<Worker<Tx>>,
  store: EventStore,
  logger: Logger | undefined,
  now: () => number = Date.now,
): () => void {
  const runner: ObservedRunner = { workers: workers as () => Iterable<Worker<unknown>>, store, logger, now };
  runners.add(runner);
  const release = hold();
  return () => {
    if (!runners.delete(runner)) return;
    release();
  };
}
