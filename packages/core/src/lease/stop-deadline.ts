import { TimeoutError } from '../errors/index.ts';
import type { Lease } from './types.ts';

/**
 * How long a lease call may go unanswered once its loop stops, ms: a check,
 * and at least a second (a healthy backend answers well within it).
 */
export const stopDeadlineMs = (checkMs: number): number => Math.max(checkMs, 1000);

export interface StopDeadlineOptions {
  /** The signal of the loop's current run, aborted when it shuts down (read at each call). */
  halted(): AbortSignal;
  deadlineMs: number;
  /** A take that answered true after it was abandoned: nothing runs on it, so it is to be given back. */
  tookLate(): void;
}

/**
 * `lease` as a leased loop calls it, so that a backend that never answers
 * cannot hold the loop's `stop()`: once the loop shuts down, a call (`acquire`,
 * `renew`, `release`) unanswered for `deadlineMs`, counted from the later of
 * the call and the stop, is abandoned: it rejects with a `TimeoutError`
 * naming the lease and the call. A running loop's calls are not bounded here.
 */
export function leaseWithStopDeadline(lease: Lease, options: StopDeadlineOptions): Lease {
  const { deadlineMs } = options;
  const bounded = <T>(what: string, call: () => Promise<T>, late: (value: T) => void): Promise<T> => {
    const signal = options.halted();
    const answer = new Promise<T>((resolve) => resolve(call()));
    let abandoned = false;
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const abandon = () => {
        timer = setTimeout(() => {
          abandoned = true;
          reject(
            new TimeoutError(
              `lease '${lease.name}': its ${what} did not answer within ${deadlineMs} ms of the stop; abandoned`,
            ),
          );
        }, deadlineMs);
      };
      if (signal.aborted) abandon();
      else signal.addEventListener('abort', abandon, { once: true });
      answer
        .then((value) => {
          if (abandoned) late(value);
          resolve(value);
        }, reject)
        .finally(() => {
          clearTimeout(timer);
          signal.removeEventListener('abort', abandon);
        });
    });
  };
  const ignore = () => {};
  return {
    name: lease.name,
    acquire: () =>
      bounded(
        'acquire',
        () => lease.acquire(),
        (taken) => {
          if (taken) options.tookLate();
        },
      ),
    renew: () => bounded('renew', () => lease.renew(), ignore),
    isHeld: () => lease.isHeld(),
    release: () => bounded('release', () => lease.release(), ignore),
    onLost: (listener) => lease.onLost(listener),
  };
}
