/**
 * Why a conformance case cannot run in this environment: the reason of the
 * first requirement not met, or `undefined` when every one is. A suite turns
 * it into a skip with that reason, so a missing capability never reads as a pass.
 *
 * @example
 * unmet(['delayedDelivery'], (r) => capabilities[r], { delayedDelivery: 'no delayed delivery' }); // 'no delayed delivery'
 */
export function unmet<R extends string>(
  requires: readonly R[] | undefined,
  met: (requirement: R) => boolean,
  reasons: Readonly<Record<R, string>>,
): string | undefined {
  const first = requires?.find((requirement) => !met(requirement));
  return first === undefined ? undefined : reasons[first];
}

/**
 * Calls `work` until it resolves, while it fails with a retryable error (as
 * calls do while a restarted backend's connections are replaced); fails with
 * the last error after `deadlineMs`.
 *
 * @example
 * await untilAccepted(() => transport.publish(topic, [message]), 'the publish after the restart');
 */
export async function untilAccepted<T>(work: () => Promise<T>, what: string, deadlineMs = 30_000): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let backoff = 5; ; backoff = Math.min(backoff * 2, 200)) {
    try {
      return await work();
    } catch (error) {
      const retryable = (error as { retryable?: unknown }).retryable === true;
      if (!retryable || Date.now() > deadline) {
        throw new Error(`${what} failed${retryable ? ` for ${deadlineMs} ms` : ''}: ${String(error)}`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}
