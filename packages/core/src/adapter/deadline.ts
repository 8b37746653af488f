/**
 * Deadlines on promises an adapter does not control (a client's connect, a
 * server's answer, a close that waits on the network): every wait ends, and
 * the timer is cleared whichever side wins. What the promise does after the
 * deadline is ignored, and its rejection is never left unhandled.
 */

/**
 * Whether `work` settled (resolved or rejected) within `ms`.
 *
 * @example
 * if (!(await settledWithin(client.close(), 5000))) client.destroy();
 */
export async function settledWithin(work: PromiseLike<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      Promise.resolve(work).then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `work`'s outcome, or `late()`'s error once `ms` passed without it.
 * `afterLate` runs once that error is given: the place to drop what `work`
 * waits on (a connection), whose own failure then cannot win over the
 * deadline's error.
 *
 * @example
 * const reply = await answerWithin(client.ping(), 2000, () => new TransportError('no answer within 2000 ms'));
 */
export async function answerWithin<T>(
  work: PromiseLike<T>,
  ms: number,
  late: () => Error,
  afterLate?: () => void,
): Promise<T> {
  const answer = Promise.resolve(work);
  answer.catch(() => undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        reject(late());
        afterLate?.();
      },
      Math.max(0, ms),
    );
  });
  try {
    return await Promise.race([answer, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
