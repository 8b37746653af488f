import { answerWithin } from '../adapter/deadline.ts';

/**
 * Polls `condition` until it returns something other than `undefined` or
 * `false` and returns that; fails with `what` in the message after
 * `deadlineMs`. For tests: wait for a condition, never for a fixed time.
 * The deadline is timed by the monotonic clock (`performance.now()`), so a
 * test that fakes `Date` still gets its failure instead of a hang.
 *
 * @example
 * await waitUntil(() => consumer.stats().handled === 5, 'five messages handled');
 */
export async function waitUntil<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  deadlineMs = 10_000,
  intervalMs = 2,
): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Resolves with `work`'s value, or fails naming `what` once `deadlineMs`
 * passed: for tests that must show something (a `stop()`, a `close()`)
 * settles, without hanging the run when it does not.
 *
 * @example
 * await settlesWithin(consumer.stop(), 5000, 'consumer.stop()');
 */
export async function settlesWithin<T>(work: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  return answerWithin(work, deadlineMs, () => new Error(`${what} did not settle within ${deadlineMs} ms`));
}
