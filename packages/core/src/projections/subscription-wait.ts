import { isNoSubscriptionError } from '../errors/index.ts';

export interface SubscriptionWaitOptions {
  /** The first wait, ms (the runner's `initialBackoffMs`). */
  initialMs: number;
  /** The longest wait, ms (the runner's `maxBackoffMs`). */
  maxMs: number;
  /** The runner's injected sleep, if any (tests); otherwise a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * A projection that publishes (the event relay) and finds no subscription
 * for its topic is not failing: it waits for a consumer group to declare one.
 * `holds` is how many times in a row the batch was held; the wait doubles
 * each time up to `maxMs`, and ends early when `signal` aborts (the runner
 * stops). Returns false, without waiting, when `error` is anything else.
 *
 * @example
 * if (await waitForSubscription(error, ++holds, w.abort.signal, { initialMs: 100, maxMs: 5000 })) attempt -= 1;
 */
export async function waitForSubscription(
  error: unknown,
  holds: number,
  signal: AbortSignal,
  options: SubscriptionWaitOptions,
): Promise<boolean> {
  if (!isNoSubscriptionError(error)) return false;
  const ms = Math.max(1, Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(0, holds - 1), 30)));
  if (signal.aborted) return true;
  let onAbort: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const slept = options.sleep
    ? options.sleep(ms)
    : new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
  try {
    await Promise.race([slept, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
  return true;
}
