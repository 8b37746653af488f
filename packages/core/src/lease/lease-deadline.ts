import { answerWithin } from '../adapter/deadline.ts';
import { TimeoutError } from '../errors/index.ts';
import type { Lease } from './types.ts';

/**
 * How long a leased loop's lease call may go unanswered, ms: a check, and at
 * least a second (a healthy backend answers well within it, a first take's
 * connection included).
 *
 * The `Lease` port does not say how long a lease outlives a silent holder,
 * so the bound is the check: a renewal must answer before the next one is
 * due. A holder's work then stops at most `checkMs` + this after its last
 * renewal answered (plus the unit in flight), before its lease can pass to
 * another process on the adapters' leases: PostgreSQL's session lock lasts
 * max(10 s, 5 × `checkMs`) of silence, SQLite's row its TTL (5 × `checkMs`
 * by default) and SQLite's calls answer before any timer runs.
 */
export const leaseCallDeadlineMs = (checkMs: number): number => Math.max(checkMs, 1000);

export interface LeaseDeadlineOptions {
  deadlineMs: number;
  /** The signal of the loop's current run, aborted when it shuts down (read at each call). */
  halted(): AbortSignal;
  /** A take that answered true after it was abandoned: nothing runs on it, so it is to be given back. */
  tookLate(): void;
  /**
   * A renewal of the current take was abandoned (with the `TimeoutError` its
   * caller gets): the lease counts as lost.
   */
  onLapse(error: TimeoutError): void;
}

/** A lease whose every call answers or fails within a deadline. */
export interface DeadlineLease extends Lease {
  /**
   * A renewal of the current take went unanswered: the lease is lost to this
   * holder (`isHeld()` false, `renew()` false without asking the backend)
   * until a release answers (or a take does).
   */
  lapsed(): boolean;
  /**
   * A take with no deadline until the loop shuts down (then `deadlineMs`
   * from the shutdown): the first take of a start whose caller waits for it,
   * which may include connecting (as long as the backend's own connection
   * timeout allows).
   */
  acquirePatiently(): Promise<boolean>;
}

const noop = () => {};

/**
 * `lease` as a leased loop calls it, so that a backend that never answers (a
 * connection gone silent, a pool with no free connection) can neither stall
 * the loop's checks nor keep its work running on a lease that may have
 * passed elsewhere: a call (`acquire`, `renew`, `release`) unanswered for
 * `deadlineMs` is abandoned: it rejects with a `TimeoutError` naming the
 * lease and the call. A renewal abandoned this way lapses the lease (see
 * `DeadlineLease.lapsed`; `onLapse` is told); a take abandoned this way
 * that answers true later is handed to `tookLate`.
 */
export function leaseWithDeadline(lease: Lease, options: LeaseDeadlineOptions): DeadlineLease {
  const { deadlineMs } = options;
  /** Counts the takes (and releases): an abandoned renewal lapses only the take it was made under. */
  let term = 0;
  let lapsed = false;
  const bounded = <T>(
    what: 'acquire' | 'renew' | 'release',
    call: () => Promise<T>,
    inTime: (value: T) => void,
    late: (value: T) => void,
    patient = false,
  ): Promise<T> => {
    const underTerm = term;
    const answer = new Promise<T>((resolve) => resolve(call()));
    let abandonedWith: TimeoutError | undefined;
    // Registered before the caller's: a value in time is recorded before the caller goes on.
    answer.then((value) => (abandonedWith ? late(value) : inTime(value)), noop);
    const within = (ofStop: boolean) =>
      answerWithin(
        answer,
        deadlineMs,
        () => {
          abandonedWith = new TimeoutError(
            `lease '${lease.name}': its ${what} did not answer within ${deadlineMs} ms${ofStop ? ' of the stop' : ''}; abandoned` +
              (what === 'renew' ? ', the lease taken for lost' : ''),
          );
          return abandonedWith;
        },
        () => {
          if (what !== 'renew' || underTerm !== term) return;
          lapsed = true;
          options.onLapse(abandonedWith as TimeoutError);
        },
      );
    return patient ? untilHalted(answer, () => within(true)) : within(false);
  };
  /** `answer` as it comes, unless the loop halts first: then `bounded`, the deadline counted from the halt. */
  const untilHalted = <T>(answer: Promise<T>, bounded: () => Promise<T>): Promise<T> => {
    const signal = options.halted();
    if (signal.aborted) return bounded();
    let halt = noop;
    const halted = new Promise<'halted'>((resolve) => {
      halt = () => resolve('halted');
      signal.addEventListener('abort', halt, { once: true });
    });
    const settled = () => signal.removeEventListener('abort', halt);
    answer.then(settled, settled);
    return Promise.race([answer, halted]).then((first) => (first === 'halted' ? bounded() : (first as T)));
  };
  const newTerm = () => {
    term += 1;
    lapsed = false;
  };
  /** A take: bounded from the call, or (`patient`) only from the loop's halt. */
  const take = (patient: boolean) =>
    bounded(
      'acquire',
      () => lease.acquire(),
      (taken) => {
        if (taken) newTerm();
      },
      (taken) => {
        if (taken) options.tookLate();
      },
      patient,
    );
  return {
    name: lease.name,
    lapsed: () => lapsed,
    acquire: () => take(false),
    acquirePatiently: () => take(true),
    renew: () => (lapsed ? Promise.resolve(false) : bounded('renew', () => lease.renew(), noop, noop)),
    isHeld: () => !lapsed && lease.isHeld(),
    release: () => {
      // A renewal still in flight belongs to the take this ends.
      term += 1;
      return bounded('release', () => lease.release(), newTerm, noop);
    },
    onLost: (listener) => lease.onLost(listener),
  };
}
