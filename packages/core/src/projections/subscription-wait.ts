import { isNoSubscriptionError, isTimeoutError, isTransportError } from '../errors/index.ts';

export interface SubscriptionWaitOptions {
  /** The first wait, ms (the runner's `initialBackoffMs`). */
  initialMs: number;
  /** The longest wait, ms (the runner's `maxBackoffMs`). */
  maxMs: number;
  /** The runner's injected sleep, if any (tests); otherwise a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Whether a failed batch is held rather than failing: a projection that
 * publishes (the event relay) and finds no subscription for its topic waits
 * for a consumer group to declare one; one with external effects (the
 * relays) whose transport is unreachable (a retryable `TransportError` or a
 * `TimeoutError`: a broker restarting, a network cut) waits for it to come
 * back, as the outbox relay does. Neither counts towards `maxAttempts`.
 */
export function isHeldFailure(error: unknown, external: boolean): boolean {
  if (isNoSubscriptionError(error)) return true;
  return external && (isTransportError(error) || isTimeoutError(error)) && error.retryable;
}

/**
 * Waits before a held batch is tried again (`isHeldFailure`). `holds` is
 * how many times in a row the batch was held; the wait doubles each time up
 * to `maxMs`, and ends early when `signal` aborts (the runner stops).
 * Returns false, without waiting, when `held` is false.
 *
 * @example
 * if (await waitWhileHeld(isHeldFailure(error, external), ++holds, w.abort.signal, { initialMs: 100, maxMs: 5000 })) attempt -= 1;
 */
export async function waitWhileHeld(
  held: boolean,
  holds: number,
  signal: AbortSignal,
  options: SubscriptionWaitOptions,
): Promise<boolean> {
  if (!held) return false;
  const ms = Math.max(1, Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(0, holds - 1), 30)));
  await sleepUnlessAborted(ms, signal, options.sleep);
  return true;
}

/**
 * Waits `ms` (with `sleep` when given: tests), or less: resolves at once
 * when `signal` aborts (the runner stops), and clears its timer.
 *
 * @example
 * await sleepUnlessAborted(backoffMs, signal); // a retry's backoff that stop() cuts short
 */
export async function sleepUnlessAborted(
  ms: number,
  signal: AbortSignal,
  sleep?: (ms: number) => Promise<void>,
): Promise<void> {
  if (signal.aborted) return;
  let onAbort: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const slept = sleep
    ? sleep(ms)
    : new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
  try {
    await Promise.race([slept, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
