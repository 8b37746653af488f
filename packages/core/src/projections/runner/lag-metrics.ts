import { type Logger, log } from '../../logging/logger.ts';
import { schemaSourceOf } from '../../schema/schema-store.ts';
import type { EventStore } from '../../store/types.ts';
import { observeMetrics } from '../../tracing/metrics.ts';
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

/**
 * Registers a runner's lag gauges, read at each collection from its workers'
 * status (`factline.projection.lag`, events) and one read per lagging
 * projection (`factline.projection.lag.duration`, s): no cost per event.
 * A failed read is told to `logger` and leaves that point out of this collection.
 * Returns their removal; a no-op while no meter provider is registered.
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
  return observeMetrics(
    (i) => [i.projectionLag, i.projectionLagDuration],
    async (i, result) => {
      const at = now();
      for (const w of workers()) {
        const status = statusOf(w);
        const attributes = { 'factline.projection.name': w.projection.name };
        result.observe(i.projectionLag, status.lag, attributes);
        const seconds =
          status.lag === 0
            ? 0
            : await oldestUnappliedAge(store, status.checkpoint, at).catch((err: unknown) => {
                log(logger, 'warn', { err, projection: w.projection.name }, 'projection lag: reading the store failed');
                return undefined;
              });
        if (seconds !== undefined) result.observe(i.projectionLagDuration, seconds, attributes);
      }
    },
  );
}
