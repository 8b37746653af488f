/**
 * The in-process wake-ups of a queue transport's waiting receivers, per
 * channel (a topic, or a topic and group: the adapter's choice). A receiver
 * reads its channel's generation before it looks for messages and waits from
 * that generation: a wake that came in between ends the wait at once, so no
 * wake is lost while the look was in flight.
 */
export interface ReceiveWakeups {
  /** Bumped by every wake of `channel` and by every `wakeAll`. */
  generation(channel: string): number;
  /** Ends the waits on `channel`. */
  wake(channel: string): void;
  /** Ends every wait (a signal that may concern any channel). */
  wakeAll(): void;
  /** Ends every wait, and every later one at once (the transport closed). */
  stop(): void;
  /** The waits of one subscription on `channel`, all ended by its `close()`. */
  waits(channel: string): SubscriptionWaits;
}

export interface SubscriptionWaits {
  readonly channel: string;
  /** The channel's generation now: read it before looking for messages, wait from it after. */
  generation(): number;
  /**
   * Resolves on a wake after generation `seen` (at once if one came already),
   * after `ms`, on `signal`, or on `close()`.
   */
  wait(seen: number, ms: number, signal: AbortSignal): Promise<void>;
  /** Ends this subscription's waits. */
  close(): void;
}

/**
 * @example
 * const wakeups = createReceiveWakeups();
 * const waits = wakeups.waits(topic);
 * const seen = waits.generation();
 * // … look for messages, find none …
 * await waits.wait(seen, pollIntervalMs, signal); // a publish calls wakeups.wake(topic)
 */
export function createReceiveWakeups(): ReceiveWakeups {
  const generations = new Map<string, number>();
  let allGeneration = 0;
  const waiters = new Map<string, Set<() => void>>();
  let stopped = false;

  const generation = (channel: string) => allGeneration + (generations.get(channel) ?? 0);
  const endAll = () => {
    for (const set of [...waiters.values()]) for (const done of [...set]) done();
  };

  const wakeups: ReceiveWakeups = {
    generation,
    wake(channel) {
      generations.set(channel, (generations.get(channel) ?? 0) + 1);
      for (const done of [...(waiters.get(channel) ?? [])]) done();
    },
    wakeAll() {
      allGeneration += 1;
      endAll();
    },
    stop() {
      stopped = true;
      wakeups.wakeAll();
    },
    waits(channel) {
      /** This subscription's waits in progress. */
      const mine = new Set<() => void>();
      return {
        channel,
        generation: () => generation(channel),
        wait: (seen, ms, signal) =>
          new Promise<void>((resolve) => {
            if (generation(channel) !== seen || ms <= 0 || signal.aborted || stopped) return resolve();
            let set = waiters.get(channel);
            if (!set) {
              set = new Set();
              waiters.set(channel, set);
            }
            const own = set;
            const done = () => {
              clearTimeout(timer);
              own.delete(done);
              mine.delete(done);
              if (own.size === 0 && waiters.get(channel) === own) waiters.delete(channel);
              signal.removeEventListener('abort', done);
              resolve();
            };
            const timer = setTimeout(done, ms);
            own.add(done);
            mine.add(done);
            signal.addEventListener('abort', done, { once: true });
          }),
        close() {
          for (const done of [...mine]) done();
        },
      };
    },
  };
  return wakeups;
}
