import { type DeadlineLease, leaseCallDeadlineMs, leaseWithDeadline } from './lease-deadline.ts';
import { createLeaseGuard, type LeaseGuard } from './lease-guard.ts';
import type { Lease } from './types.ts';

/** One piece of work run only while its lease is held here. */
export interface LeasedWork {
  readonly lease: Lease;
  /**
   * Begins the work, its lease just taken. `guard.holds()` is the check to
   * make before each unit of work. A rejection gives the lease back (on the
   * first check, `start()` of the loop rejects with it).
   */
  start(guard: LeaseGuard): Promise<void>;
  /** Ends the work after its unit in flight: the lease was `'lost'`, or the loop is `'stopping'`. */
  stop(reason: 'lost' | 'stopping'): Promise<void>;
  /** Each check while held, after the renewal (e.g. to resume after a passing failure). */
  whileHeld?(): Promise<void>;
  /** Each check while another process holds the lease (e.g. to refresh a stand-by's view). */
  whileStandby?(): Promise<void>;
}

export interface LeasedLoopOptions {
  /** How often leases are renewed (held) or tried (standing by), ms. */
  checkMs: number;
  /**
   * A take, renewal, start or release that failed (a lease call unanswered
   * within its deadline as a `TimeoutError`); the loop goes on (a failure of
   * the first check rejects `start()`). Each failure is told once.
   */
  onError?(work: LeasedWork, error: unknown): void;
  /** This process took (`'held'`) or gave up or lost (`'standby'`) a work's lease. */
  onLeaseChange?(work: LeasedWork, lease: 'held' | 'standby'): void;
  /** Runs once every work stopped and its lease was released, e.g. to close the lease provider. */
  close?(): Promise<void>;
  /**
   * `'reject'` (default): a failure of the first check rejects `start()`
   * (a runner whose caller waits for it to start). `'report'`: it goes to
   * `onError` like any later one and the loop tries again (a relay started
   * without waiting).
   */
  startFailures?: 'reject' | 'report';
}

/** The lifecycle of work that runs in one process at a time, with failover. */
export interface LeasedLoop {
  /** The first check (its failures reject, after shutting down), then one every `checkMs`. */
  start(): Promise<void>;
  /**
   * Ends the checks, stops every work, releases the leases, then `close`.
   * A lease call (take, renewal, release) unanswered max(`checkMs`, 1000) ms
   * is abandoned (see `createLeasedLoop`), so a backend that never answers
   * does not hold it.
   */
  stop(): Promise<void>;
  /** Runs the next check now. */
  wake(): void;
  running(): boolean;
  /** True while `work` runs here. */
  isHeld(work: LeasedWork): boolean;
  /** Runs `task` after every lease change queued before it (checks, losses, stop). */
  serial<T>(task: () => Promise<T>): Promise<T>;
}

interface State {
  held: boolean;
  guard: LeaseGuard | undefined;
  /** Taken since start and maybe not released. */
  taken: boolean;
  /** While the work stops after its lease was lost: not taken again before. */
  stopping: Promise<void> | undefined;
}

const noop = () => {};

/**
 * Runs each work while this process holds its lease: every `checkMs` a
 * holder renews its leases and a stand-by tries to take them. A lease lost
 * (a renewal that fails, an ended session) stops its work at once, and a
 * lease taken starts it. Checks, losses and stop run one at a time, in order.
 *
 * Every call to a lease (`acquire`, `renew`, also through the work's guard,
 * `release`) has max(`checkMs`, 1000) ms to answer (`leaseCallDeadlineMs`);
 * one that has not is abandoned: it fails with a `TimeoutError` naming the
 * lease and the call, told to `onError`, and the loop goes on. A renewal
 * abandoned this way counts as the lease lost: the work stops (`'lost'`) at
 * once, since the lease may pass to another process while its backend is
 * silent, and the lease is given back (`release`) before this loop takes it
 * again. A take abandoned this way that answers later is given back once
 * its work is not running here. The first take of a start with
 * `startFailures: 'reject'` (its caller waits for it, and it may include
 * connecting) has no deadline until a stop, then the same one from the stop
 * (`start()` rejects with its `TimeoutError`). A shutdown goes on past
 * abandoned calls, so `stop()` resolves whatever the backend does.
 */
export function createLeasedLoop(works: readonly LeasedWork[], options: LeasedLoopOptions): LeasedLoop {
  const states = new Map<LeasedWork, State>(
    works.map((work) => [work, { held: false, guard: undefined, taken: false, stopping: undefined }]),
  );
  let running = false;
  let loop: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  let wakeLoop = noop;
  let chain: Promise<unknown> = Promise.resolve();
  /** Aborted when the current run shuts down: a first take waiting without a deadline gets one from then. */
  let halt = new AbortController();
  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    const result = chain.then(task);
    chain = result.then(noop, noop);
    return result;
  };
  /** Errors told already: a lapse is told when the renewal is abandoned, and the loop's renewal gets it again. */
  const told = new WeakSet<object>();
  const report = (work: LeasedWork, error: unknown) => {
    if (typeof error === 'object' && error !== null) {
      if (told.has(error)) return;
      told.add(error);
    }
    try {
      options.onError?.(work, error);
    } catch {
      // The callback's own failure changes nothing.
    }
  };
  const changed = (work: LeasedWork, lease: 'held' | 'standby') => {
    try {
      options.onLeaseChange?.(work, lease);
    } catch {
      // The callback's own failure changes nothing.
    }
  };
  const stateOf = (work: LeasedWork) => states.get(work) as State;

  /** The lease of each work as the loop and the work's guard call it: each call answers within its deadline. */
  const boundedLeases = new Map<LeasedWork, DeadlineLease>(
    works.map((work) => [
      work,
      leaseWithDeadline(work.lease, {
        deadlineMs: leaseCallDeadlineMs(options.checkMs),
        halted: () => halt.signal,
        // After the lease changes queued before it, and once the work is not running here.
        tookLate: () =>
          void serial(async () => {
            const state = stateOf(work);
            await state.stopping;
            if (!state.held) await release(work);
          }),
        // Told here, whoever renewed (the loop, or the work through its guard).
        onLapse: (error) => {
          report(work, error);
          lose(work);
        },
      }),
    ]),
  );
  const leaseOf = (work: LeasedWork) => boundedLeases.get(work) as DeadlineLease;

  /** Stops `work` here; `reason` says whether its lease was lost or the loop stops. */
  const giveUp = (work: LeasedWork, reason: 'lost' | 'stopping'): Promise<void> => {
    const state = stateOf(work);
    if (!state.held) return state.stopping ?? Promise.resolve();
    state.held = false;
    state.guard = undefined;
    const stopping = work
      .stop(reason)
      .catch((error: unknown) => report(work, error))
      .then(() => changed(work, 'standby'))
      .finally(() => {
        if (state.stopping === stopping) state.stopping = undefined;
      });
    state.stopping = stopping;
    return stopping;
  };

  /** The lease was lost (told by the lease, or a renewal went unanswered). */
  const lose = (work: LeasedWork) => {
    if (!stateOf(work).held) return;
    // At once: the work must not go on without its lease.
    void giveUp(work, 'lost');
    wakeLoop();
  };
  for (const work of works) work.lease.onLost(() => lose(work));

  /** Gives the lease of `work` back; false when that failed (reported). */
  const release = async (work: LeasedWork): Promise<boolean> => {
    try {
      await leaseOf(work).release();
      return true;
    } catch (error) {
      report(work, error);
      return false;
    }
  };

  const take = async (work: LeasedWork, firstCheck: boolean) => {
    const first = firstCheck && options.startFailures !== 'report';
    const state = stateOf(work);
    // A renewal went unanswered: the lease is given back before it is taken again (not while that fails).
    if (leaseOf(work).lapsed() && !(await release(work))) {
      await work.whileStandby?.();
      return;
    }
    let taken = false;
    try {
      // The first take of a start its caller waits for may include connecting: no deadline until a stop.
      taken = await (first ? leaseOf(work).acquirePatiently() : leaseOf(work).acquire());
    } catch (error) {
      if (first) throw error;
      report(work, error);
    }
    if (!taken) {
      await work.whileStandby?.();
      return;
    }
    state.taken = true;
    state.held = true;
    const guard = createLeaseGuard(leaseOf(work), options.checkMs);
    state.guard = guard;
    try {
      await work.start(guard);
    } catch (error) {
      // The work could not start (its checkpoint unreadable, its `init` failed): let another process try.
      state.held = false;
      state.guard = undefined;
      await work.stop('stopping').catch(noop);
      await release(work);
      if (first) throw error;
      report(work, error);
      return;
    }
    changed(work, 'held');
  };

  const renew = async (work: LeasedWork) => {
    const state = stateOf(work);
    let renewed = false;
    try {
      renewed = (await state.guard?.renew()) ?? false;
    } catch (error) {
      report(work, error);
    }
    if (!renewed) {
      await giveUp(work, 'lost');
      // Unanswered: given back (once its work stopped), so a stand-by need not wait for it to expire.
      if (leaseOf(work).lapsed()) await release(work);
      return;
    }
    await work.whileHeld?.();
  };

  const check = async (first: boolean) => {
    for (const work of works) {
      if (!running) return;
      const state = stateOf(work);
      if (state.held) await renew(work);
      else if (!state.stopping) await take(work, first);
    }
  };

  const shutDown = async () => {
    for (const work of works) {
      const state = stateOf(work);
      if (state.held) await giveUp(work, 'stopping');
      else {
        await state.stopping;
        await work.stop('stopping').catch((error: unknown) => report(work, error));
      }
      if (state.taken) {
        state.taken = false;
        await release(work);
      }
    }
    await options.close?.();
  };

  const waitBeforeNextCheck = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wakeLoop = noop;
        resolve();
      }, options.checkMs);
      wakeLoop = () => {
        clearTimeout(timer);
        wakeLoop = noop;
        resolve();
      };
    });

  const checkLeases = async () => {
    while (running) {
      await waitBeforeNextCheck();
      if (running) await serial(() => check(false)).catch(noop);
    }
  };

  return {
    serial,
    wake: () => wakeLoop(),
    running: () => running,
    isHeld: (work) => stateOf(work).held,
    async start() {
      if (running) return;
      running = true;
      stopped = undefined;
      halt = new AbortController();
      try {
        await serial(() => check(true));
      } catch (error) {
        running = false;
        // Shut down once: a stop() called meanwhile shut down already, a later one resolves with this.
        stopped ??= serial(shutDown);
        await stopped;
        throw error;
      }
      loop = checkLeases();
    },
    stop() {
      stopped ??= (async () => {
        running = false;
        halt.abort();
        wakeLoop();
        await loop;
        loop = undefined;
        await serial(shutDown);
      })();
      return stopped;
    },
  };
}
