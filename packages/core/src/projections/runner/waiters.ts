import { type ProjectionFailedError, type ProjectionSupersededError, TimeoutError } from '../../errors/index.ts';
import type { Worker } from './worker.ts';

/** A `waitFor` call waiting for its projection to reach `position`. */
export interface Waiter {
  position: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Waits until `w` has processed `position`: resolves at once when it has,
 * rejects at once when it failed or was superseded, else with `TimeoutError`
 * after `timeoutMs` unless `settleWaiters` settles it first.
 */
export function waitForPosition<Tx>(w: Worker<Tx>, position: number, timeoutMs: number): Promise<void> {
  if (w.superseded) return Promise.reject(w.superseded);
  if (w.checkpoint >= position) return Promise.resolve();
  if (w.failure) return Promise.reject(w.failure);
  const name = w.projection.name;
  return new Promise<void>((resolve, reject) => {
    const waiter: Waiter = {
      position,
      resolve,
      reject,
      timer: setTimeout(() => {
        w.waiters = w.waiters.filter((x) => x !== waiter);
        reject(
          new TimeoutError(
            `projection '${name}' had not reached position ${position} after ${timeoutMs} ms (at ${w.checkpoint})`,
          ),
        );
      }, timeoutMs),
    };
    w.waiters.push(waiter);
  });
}

/** Resolves the waiters the checkpoint has reached; rejects every waiter once the projection failed. */
export function settleWaiters<Tx>(w: Worker<Tx>): void {
  w.waiters = w.waiters.filter((waiter) => {
    if (w.checkpoint >= waiter.position) {
      clearTimeout(waiter.timer);
      waiter.resolve();
      return false;
    }
    if (w.failure) {
      clearTimeout(waiter.timer);
      waiter.reject(w.failure);
      return false;
    }
    return true;
  });
}

/** The projection ended on `failure`: the rebuild in flight and the waiters the checkpoint has not reached reject. */
export function endWaits<Tx>(w: Worker<Tx>, failure: ProjectionFailedError | ProjectionSupersededError): void {
  w.failure = failure;
  const rebuild = w.rebuild;
  w.rebuild = undefined;
  rebuild?.fail(failure);
  settleWaiters(w);
}

/** The runner stopped: every waiter left rejects with a `TimeoutError`. */
export function rejectWaitersOnStop<Tx>(w: Worker<Tx>): void {
  for (const waiter of w.waiters) {
    clearTimeout(waiter.timer);
    waiter.reject(new TimeoutError(`projection '${w.projection.name}' stopped before position ${waiter.position}`));
  }
  w.waiters = [];
}
