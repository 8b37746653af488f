/**
 * The wait of a projection backend's `waitForAppends`: resolves when an
 * append past `position` is signalled (`subscribe` hands each source a wake
 * function and returns the removals), when `timeoutMs` passed or `signal`
 * aborted, or at once when the head is already past `position` (an append
 * between the runner's last read and the subscription). Never rejects.
 */
export function waitForAppendSignal(options: {
  position: number;
  timeoutMs: number;
  signal: AbortSignal;
  /** Subscribes `wake` to every source of append signals; returns the removals. */
  subscribe(wake: () => void): (() => void)[];
  headPosition(): Promise<number>;
}): Promise<void> {
  const { position, signal } = options;
  return new Promise<void>((resolve) => {
    let settled = false;
    let removals: (() => void)[] = [];
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const remove of removals) remove();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, options.timeoutMs);
    removals = options.subscribe(done);
    if (settled) {
      for (const remove of removals) remove();
      return;
    }
    signal.addEventListener('abort', done, { once: true });
    if (signal.aborted) done();
    else
      options.headPosition().then(
        (head) => head > position && done(),
        () => done(),
      );
  });
}
