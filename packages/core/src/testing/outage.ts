import assert from 'node:assert/strict';
import { isFactlineError, isStoreClosedError } from '../errors/index.ts';
import { settlesWithin } from './wait-until.ts';

/**
 * How long a call may take to settle once the backend is gone: the broker
 * adapters give up a call waiting for a connection after 5 s, a consumer
 * drains for its `drainTimeoutMs` first; this leaves room on a loaded machine
 * while still failing a call that waits for the backend to come back.
 */
export const OUTAGE_BOUND_MS = 12_000;

/** Why a case of a backend gone for good is skipped: the suite was given no `outage` hook. */
export const OUTAGE_SKIP_REASON =
  'no outage hook: give the suite an outage option that stops the backend and starts it again';

/** The suite's `outage` hook: stops the backend, resolves with the call that starts it again. */
export type OutageHook = () => Promise<() => Promise<void>>;

/**
 * The `outage` hook for one case: `outage()` stops the backend and gives the
 * call that starts it again (once, however often called); `end()`, after the
 * case, starts it again if the case did not, so the next case finds it up.
 *
 * @example
 * const outage = caseOutage(options.outage);
 * try { await run({ outage: outage.outage }); } finally { await outage.end(); }
 */
export function caseOutage(hook: OutageHook | undefined): {
  outage(): Promise<() => Promise<void>>;
  end(): Promise<void>;
} {
  let resume: (() => Promise<void>) | undefined;
  return {
    async outage() {
      if (!hook) throw new Error('this case requires the outage option');
      const start = await hook();
      let started: Promise<void> | undefined;
      resume = () => {
        started ??= start();
        return started;
      };
      return resume;
    },
    end: () => resume?.() ?? Promise.resolve(),
  };
}

/** What `work` rejected with (undefined when it resolved), failing the case when it does not settle in the outage bound. */
export const outcomeWithin = (work: Promise<unknown>, what: string): Promise<unknown> =>
  settlesWithin(
    work.then(
      () => undefined,
      (error: unknown) => error,
    ),
    OUTAGE_BOUND_MS,
    what,
  );

/** A call refused while the backend is gone says so with a retryable error (or that the transport is closed). */
export function assertRetryableRefusal(error: unknown, what: string): void {
  if (error === undefined) return;
  assert.ok(
    isFactlineError(error) && (error.retryable || isStoreClosedError(error)),
    `${what} rejected with ${String(error)}: expected a retryable Factline error`,
  );
}

/**
 * The `restart` and `outage` options of a conformance suite, from the two
 * calls that stop a backend the test owns and start it again (each resolving
 * once it refuses, or accepts, connections).
 *
 * @example
 * testTransportConformance({ name: 'redis (private server)', createTransport, ...backendHooks(server.stopServer, server.startServer) });
 */
export function backendHooks(
  stop: () => Promise<void>,
  start: () => Promise<void>,
): { restart: () => Promise<void>; outage: OutageHook } {
  return {
    async restart() {
      await stop();
      await start();
    },
    async outage() {
      await stop();
      return start;
    },
  };
}
