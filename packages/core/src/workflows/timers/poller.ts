import { ValidationError, type ValidationIssue } from '../../errors/index.ts';
import { createInMemoryLeases } from '../../lease/in-memory.ts';
import type { LeaseGuard } from '../../lease/lease-guard.ts';
import { createLeasedLoop, type LeasedWork } from '../../lease/leased-loop.ts';
import type { Lease } from '../../lease/types.ts';
import { type Logger, log, loggerKind } from '../../logging/logger.ts';
import { checkOptions, describeValue, type OptionSpecOf } from '../../options/check-options.ts';
import type { TimerFiring, WorkflowHandler } from '../handler.ts';
import { type Clock, systemClock } from './clock.ts';
import type { PendingTimer, TimerStore } from './types.ts';

export interface WorkflowTimersOptions {
  timers: TimerStore;
  /** The handlers of the workflows whose timers this poller fires (by the timer's stream category). */
  handlers: readonly WorkflowHandler[];
  /** Default: the system clock. */
  clock?: Clock;
  /** Timers read per round. Default 100. */
  batchSize?: number;
  /**
   * Timers of a round recorded together: one `handler.fireTimers` call, whose
   * appends the store's group commit writes in one transaction (a store splits
   * a larger batch by its own limit, e.g. PostgreSQL's `maxBatch`). Default 64,
   * on every store: the adapters do not change it.
   */
  concurrency?: number;
  /**
   * Longest wait between looks at the store: it bounds how late a timer
   * scheduled by another process fires when nothing wakes the poller (on
   * SQLite; PostgreSQL's poller is woken by a notification). Default 100 ms.
   */
  pollMs?: number;
  /** With a lease, one poller per store fires (the others stand by and take over). Default: none. */
  lease?: Lease;
  /**
   * How often the lease is renewed or tried, ms. Default 1000. A lease call
   * unanswered max(`leaseCheckMs`, 1000) ms is abandoned (a `TimeoutError` to
   * `onError`); a renewal abandoned this way stops the firing as a lost lease would.
   */
  leaseCheckMs?: number;
  /** Told each failure (a timer whose input could not be recorded stays pending and is tried again). */
  onError?: (error: unknown) => void;
  logger?: Logger;
  /** Runs once the loop stopped and its lease was released (an adapter closes its lease provider here). */
  close?: () => Promise<void>;
}

/** The poller's options by name: an adapter checks its own with them before it opens or writes anything. */
export const workflowTimersSpec: OptionSpecOf<WorkflowTimersOptions> = {
  timers: 'object',
  handlers: 'array',
  clock: 'object',
  batchSize: 'positive-integer',
  concurrency: 'positive-integer',
  pollMs: 'timer-ms',
  lease: 'object',
  leaseCheckMs: 'timer-ms',
  onError: 'function',
  logger: loggerKind,
  close: 'function',
};

/**
 * Checks each of `handlers` (an array: `workflowTimersSpec` checks that) is a
 * workflow handler the poller can fire timers through: `workflow.name` and
 * `fireTimers` or `fireTimer`, one handler per workflow. A `ValidationError`
 * at `<where>.handlers[i]` saying what is missing; an adapter calls it with
 * its options' check, before it opens or writes anything.
 *
 * @example
 * checkWorkflowHandlers(options.handlers, 'startSqliteWorkflowTimers');
 */
export function checkWorkflowHandlers(handlers: unknown, where: string): void {
  if (!Array.isArray(handlers)) return;
  const issues: ValidationIssue[] = [];
  const seen = new Map<string, number>();
  handlers.forEach((handler: Partial<WorkflowHandler> | null | undefined, i) => {
    const path = `${where}.handlers[${i}]`;
    if (typeof handler !== 'object' || handler === null) {
      issues.push({
        path,
        message: `must be a workflow handler (createWorkflowHandler), got ${describeValue(handler)}`,
      });
      return;
    }
    const name: unknown = handler.workflow?.name;
    const missing: string[] = [];
    if (typeof name !== 'string' || name.length === 0) missing.push('workflow.name (the workflow it fires timers of)');
    if (typeof handler.fireTimers !== 'function' && typeof handler.fireTimer !== 'function') {
      missing.push('fireTimers or fireTimer function');
    }
    if (missing.length > 0) {
      issues.push({
        path,
        message: `is not a workflow handler (createWorkflowHandler): it has no ${missing.join(' and no ')}`,
      });
      return;
    }
    const first = seen.get(name as string);
    if (first !== undefined) {
      issues.push({
        path,
        message: `fires the timers of workflow '${name as string}', as handlers[${first}] does: give one handler per workflow`,
      });
    } else {
      seen.set(name as string, i);
    }
  });
  if (issues.length > 0) throw new ValidationError(issues);
}

/** A handler's `fireTimers`, or for a handler without one (a hand-made wrapper), `fireTimer` on each. */
async function fireWith(handler: WorkflowHandler, timers: readonly PendingTimer[]): Promise<TimerFiring[]> {
  if (typeof handler.fireTimers === 'function') return handler.fireTimers(timers);
  return Promise.all(
    timers.map(async (timer): Promise<TimerFiring> => {
      try {
        return { timer, outcome: await handler.fireTimer(timer) };
      } catch (error) {
        return { timer, error };
      }
    }),
  );
}

/** The longest a failing timer, or a failing store, waits before the poller tries again. */
const RETRY_CAP_MS = 5000;

/** The wait before the `failures`-th retry: `pollMs`, doubled at each failure, at most `RETRY_CAP_MS`. */
const retryDelay = (pollMs: number, failures: number) =>
  Math.min(Math.max(pollMs, RETRY_CAP_MS), pollMs * 2 ** Math.min(failures - 1, 20));

/** The loop's timers that failed, each left out of the looks until its retry. */
interface RetryWaits {
  /** Whether `timerId` failed and its retry is not due at `now`. */
  waits(timerId: string, now: number): boolean;
  size(): number;
  /** When the earliest retry is due. */
  nextRetry(): number;
  /** After a look at `now`: the timers that failed in it wait longer; those tried and not failed are forgotten. */
  settle(failed: ReadonlySet<string>, now: number): void;
}

function createRetryWaits(pollMs: number): RetryWaits {
  const byTimer = new Map<string, { failures: number; retryAt: number }>();
  return {
    waits: (timerId, now) => (byTimer.get(timerId)?.retryAt ?? 0) > now,
    size: () => byTimer.size,
    nextRetry() {
      let next = Number.POSITIVE_INFINITY;
      for (const { retryAt } of byTimer.values()) next = Math.min(next, retryAt);
      return next;
    },
    settle(failed, now) {
      for (const [timerId, wait] of byTimer) {
        // Due for its retry and not failed again: fired, dropped, or gone from the table.
        if (wait.retryAt <= now && !failed.has(timerId)) byTimer.delete(timerId);
      }
      for (const timerId of failed) {
        const failures = (byTimer.get(timerId)?.failures ?? 0) + 1;
        byTimer.set(timerId, { failures, retryAt: now + retryDelay(pollMs, failures) });
      }
    },
  };
}

export interface FireReport {
  fired: number;
  dropped: number;
  failed: number;
}

export interface WorkflowTimers {
  /** Fires every timer due now, once (the harness calls it after moving its clock). */
  fireDue(): Promise<FireReport>;
  /** Starts the polling loop (under the lease when given). */
  start(): Promise<void>;
  /** Ends the loop after the timer in flight; resolves always. */
  stop(): Promise<void>;
  /** Wakes the loop now (e.g. after a decision scheduled a timer in this process). */
  wake(): void;
  stats(): FireReport & { running: boolean; held: boolean };
}

/**
 * The timer poller: reads due timers from the store and records each as an
 * input of its instance, `concurrency` at a time through `handler.fireTimers`
 * (one group commit for the batch), whose append removes it from the table. A timer fired twice (two pollers, a crash after the append)
 * collapses: the second finds its input recorded. A timer whose instance
 * ended is dropped and counted. Timers due while no poller ran fire late,
 * never lost.
 *
 * @example
 * const timers = createWorkflowTimers({ timers: store.timers, handlers: [checkoutHandler], lease: leases.lease('timers') });
 * await timers.start();
 */
export function createWorkflowTimers(options: WorkflowTimersOptions): WorkflowTimers {
  checkOptions(options, workflowTimersSpec, 'createWorkflowTimers', {
    required: ['timers', 'handlers'],
    optional: false,
  });
  checkWorkflowHandlers(options.handlers, 'createWorkflowTimers');
  const { timers } = options;
  const clock = options.clock ?? systemClock;
  const batchSize = options.batchSize ?? 100;
  const concurrency = options.concurrency ?? 64;
  const pollMs = options.pollMs ?? 100;
  const byWorkflow = new Map(options.handlers.map((handler) => [handler.workflow.name, handler]));
  const stats = { fired: 0, dropped: 0, failed: 0, running: false, held: false };
  const report = (error: unknown) => {
    stats.failed++;
    log(options.logger, 'error', { err: error }, 'workflow timer failed');
    try {
      options.onError?.(error);
    } catch (hookError) {
      log(options.logger, 'error', { err: hookError }, 'onError hook failed');
    }
  };

  const settle = async (firing: TimerFiring, round: FireReport, failedNow: Set<string>) => {
    const { timer } = firing;
    try {
      if (firing.outcome === undefined) throw firing.error;
      if (firing.outcome === 'timer-dropped' || firing.outcome === 'duplicate') {
        // Gone or recorded already (a table that missed its removal): never fired again.
        await timers.remove(timer.timerId);
        if (firing.outcome === 'timer-dropped') {
          round.dropped++;
          const { workflow, streamId, timerId } = timer;
          log(options.logger, 'info', { workflow, streamId, timerId }, 'workflow timer dropped');
        }
      } else {
        round.fired++;
      }
    } catch (error) {
      failedNow.add(timer.timerId);
      round.failed++;
      report(error);
    }
  };

  /** Records one batch: each workflow's timers through its handler's `fireTimers`, the workflows side by side. */
  const fireBatch = async (batch: readonly PendingTimer[], round: FireReport, failedNow: Set<string>) => {
    const byHandler = new Map<string, PendingTimer[]>();
    for (const timer of batch) byHandler.set(timer.workflow, [...(byHandler.get(timer.workflow) ?? []), timer]);
    await Promise.all(
      [...byHandler].map(async ([name, group]) => {
        const handler = byWorkflow.get(name);
        const firings: TimerFiring[] = handler
          ? await fireWith(handler, group)
          : group.map((timer) => ({
              timer,
              error: new Error(`no handler given for workflow '${name}' (timer ${timer.timerId})`),
            }));
        for (const firing of firings) await settle(firing, round, failedNow);
      }),
    );
  };

  /**
   * Fires what is due now, `failedNow` left out (tried and failed in this call already); `waiting`, the loop's
   * timers that failed in earlier rounds, left out until their retry.
   */
  const fireDue = async (
    holds: () => Promise<boolean> = async () => true,
    waiting?: RetryWaits,
  ): Promise<FireReport> => {
    const round: FireReport = { fired: 0, dropped: 0, failed: 0 };
    const failedNow = new Set<string>();
    const now = clock.now();
    const skipped = (timerId: string) => failedNow.has(timerId) || (waiting?.waits(timerId, now) ?? false);
    try {
      for (;;) {
        const asked = batchSize + failedNow.size + (waiting?.size() ?? 0);
        const read = await timers.due(clock.now(), asked);
        const due = read.filter((t) => !skipped(t.timerId));
        if (due.length === 0) return round;
        for (let from = 0; from < due.length; from += concurrency) {
          if (!(await holds())) return round;
          await fireBatch(due.slice(from, from + concurrency), round, failedNow);
        }
        // Fewer than asked: every due timer was read, none is left for another look.
        if (read.length < asked) return round;
      }
    } finally {
      waiting?.settle(failedNow, now);
    }
  };
  const count = (round: FireReport) => {
    stats.fired += round.fired;
    stats.dropped += round.dropped;
    return round;
  };

  let wakeNow = () => {};
  let woken = false;
  let term: { running: boolean; done: Promise<void>; stop(): void } | undefined;
  const startTerm = (guard: LeaseGuard) => {
    const current = { running: true, done: Promise.resolve(), stop: () => {} };
    current.stop = () => {
      current.running = false;
      wakeNow();
    };
    /** Sleeps `ms`, ended early by `wake()` and by `stop()`. */
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const cancel = clock.setTimer(done, ms);
        function done() {
          cancel();
          wakeNow = () => {};
          resolve();
        }
        wakeNow = done;
      });
    const waiting = createRetryWaits(pollMs);
    /**
     * When the loop looks next: the earliest pending timer's due time, or when timers waiting for their retry
     * are due already, the earliest of their retries and the first timer after them that is not waiting.
     */
    const nextLook = async (): Promise<number | undefined> => {
      const next = await timers.nextDueAt();
      const now = clock.now();
      if (next === undefined || next > now || waiting.size() === 0) return next;
      const ahead = await timers.due(now + pollMs, waiting.size() + 1);
      const first = ahead.find((timer) => !waiting.waits(timer.timerId, now));
      return Math.min(first?.dueAt ?? Number.POSITIVE_INFINITY, waiting.nextRetry());
    };
    const wait = async () => {
      const next = await nextLook();
      let ms = next === undefined ? pollMs : Math.min(pollMs, Math.max(0, next - clock.now()));
      // A retry due already, or a timer due and not waiting: looked at after a turn of the clock, never in a spin.
      if (ms === 0 && waiting.size() > 0) ms = 1;
      // Woken while firing or reading (a timer scheduled meanwhile): look again at once.
      if (!current.running || woken) return;
      await sleep(ms);
    };
    current.done = (async () => {
      let failures = 0;
      while (current.running) {
        try {
          woken = false;
          count(await fireDue(() => (current.running ? guard.holds() : Promise.resolve(false)), waiting));
          failures = 0;
          await wait();
        } catch (error) {
          report(error);
          // The store failing (down, closed): the next look waits longer each time, up to RETRY_CAP_MS.
          failures += 1;
          if (current.running) await sleep(retryDelay(pollMs, failures));
        }
      }
    })();
    term = current;
  };

  const work: LeasedWork = {
    lease: options.lease ?? createInMemoryLeases().lease('workflow-timers'),
    async start(guard) {
      startTerm(guard);
    },
    async stop() {
      const current = term;
      term = undefined;
      current?.stop();
      await current?.done;
    },
  };
  const loop = createLeasedLoop([work], {
    checkMs: options.leaseCheckMs ?? 1000,
    onError: (_work, error) => report(error),
    onLeaseChange: (_work, lease) => {
      stats.held = lease === 'held';
    },
    startFailures: 'report',
    close: options.close,
  });

  return {
    fireDue: async () => count(await fireDue()),
    async start() {
      stats.running = true;
      await loop.start();
    },
    async stop() {
      await loop.stop();
      stats.running = false;
      stats.held = false;
    },
    wake: () => {
      woken = true;
      wakeNow();
    },
    stats: () => ({ ...stats }),
  };
}
