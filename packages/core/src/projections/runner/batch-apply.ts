import { isStorageError, ProjectionFailedError } from '../../errors/index.ts';
import { firstDecodeFailure } from '../../schema/projection-read.ts';
import { storableFailureText } from '../../store/json-checks.ts';
import type { RecordedEvent } from '../../store/types.ts';
import { traceProjectionBatch } from '../../tracing/projection-spans.ts';
import { isHeldFailure, sleepUnlessAborted, waitWhileHeld } from '../subscription-wait.ts';
import type { RunnerContext } from './context.ts';
import { checkSuperseded } from './versions.ts';
import { markFailed, recordError, versionOf, type Worker } from './worker.ts';

/** The database was briefly unavailable (a busy SQLite file, a dropped PostgreSQL connection): try again, as a hold. */
const isUnavailable = (error: unknown): boolean => isStorageError(error) && error.retryable;

/**
 * Commits one batch with its new checkpoint `next`, retrying with backoff
 * (full jitter, doubling; a batch holding an event that could not be
 * decoded is not retried). A retryable `StorageError` the handler did not
 * throw (the database briefly unavailable) is held like a relay's
 * unreachable transport: tried again with backoff, counted as no attempt,
 * never isolated or parked. When every try failed, a batch of several events
 * sets `isolateUntil` so the loop goes one event at a time to find the
 * failing one; a single failing event is parked or fails the projection, as
 * the projection says. Returns false when the projection failed (or was
 * superseded) and its loop must stop; true at once when its loop's
 * `signal` aborts.
 */
export async function applyBatch<Tx>(
  ctx: RunnerContext<Tx>,
  w: Worker<Tx>,
  batch: RecordedEvent[],
  next: number,
  signal: AbortSignal,
): Promise<boolean> {
  const { backend, maxAttempts, initialBackoffMs, maxBackoffMs } = ctx;
  let lastFailure: unknown;
  /** Tries in a row that were held (no subscription, a relay's transport unreachable): they wait, and count as no attempt. */
  let holds = 0;
  // An event the registry cannot decode fails the batch like a failing handler, without
  // retries: upcasters are pure, so reading it again gives the same failure.
  const undecodable = firstDecodeFailure(batch);
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (signal.aborted) return true;
    /** Set when the handler threw: any other failure is the backend's (its transaction, its commit). */
    let handlerThrew = false;
    try {
      if (undecodable) throw undecodable.error;
      const threw = (error: unknown): never => {
        handlerThrew = true;
        throw error;
      };
      // Synchronous when the handler is (SQLite runs it inside a synchronous transaction).
      const work = (tx: Tx) => {
        try {
          return w.projection.handle(batch, tx)?.then(undefined, threw);
        } catch (error) {
          return threw(error);
        }
      };
      const commit = () =>
        backend.commit({
          name: w.key,
          expected: w.checkpoint,
          checkpoint: next,
          work,
          external: w.projection.effects === 'external',
          version: versionOf(w),
        });
      const committed = await traceProjectionBatch(w.projection.name, batch, attempt, commit);
      if (!committed) {
        // Another runner moved the checkpoint (continue from where it is), or a newer version is live.
        w.checkpoint = await backend.loadCheckpoint(w.key);
        return !(await checkSuperseded(ctx, w));
      }
      w.checkpoint = next;
      if (w.rebuild) w.rebuild.applied += batch.length;
      return true;
    } catch (error) {
      recordError(ctx, w, error, (undecodable?.event ?? (batch[0] as RecordedEvent)).position);
      if (undecodable) {
        lastFailure = error;
        break;
      }
      const wait = { initialMs: initialBackoffMs, maxMs: maxBackoffMs, sleep: ctx.givenSleep };
      const held = isHeldFailure(error, w.projection.effects === 'external') || (!handlerThrew && isUnavailable(error));
      if (await waitWhileHeld(held, held ? ++holds : holds, signal, wait)) {
        attempt -= 1;
        continue;
      }
      lastFailure = error;
      if (attempt < maxAttempts) {
        const backoffMs = ctx.random() * Math.min(maxBackoffMs, initialBackoffMs * 2 ** (attempt - 1));
        await sleepUnlessAborted(backoffMs, signal, ctx.givenSleep);
      }
    }
  }
  if (batch.length > 1) {
    // Some event of the batch fails: go one event at a time to find which.
    w.isolateUntil = (batch[batch.length - 1] as RecordedEvent).position;
    return true;
  }
  const event = batch[0] as RecordedEvent;
  if (w.projection.onFailure === 'park') {
    // Kept as every store can (a NUL as U+2400, a lone surrogate as U+FFFD): the error's text never stops the park.
    const message = storableFailureText(
      lastFailure instanceof Error ? (lastFailure.stack ?? lastFailure.message) : String(lastFailure),
    );
    if (await backend.park(w.key, w.checkpoint, event, message, versionOf(w))) {
      w.checkpoint = event.position;
      w.parked += 1;
      return true;
    }
    w.checkpoint = await backend.loadCheckpoint(w.key);
    return !(await checkSuperseded(ctx, w));
  }
  markFailed(w, new ProjectionFailedError(w.projection.name, event.position, lastFailure));
  return false;
}
