/**
 * The timer of a group reader's periodic round (renewing its leases, sharing
 * partitions, trimming): one round at a time, the next `every` ms after the
 * last one settled, until `end`.
 */
export interface LeaseTicksSettings {
  /** Time between the end of one round and the start of the next, ms. */
  every: number;
  /** A round still unanswered after this long is told (`onSilent`), once per round. */
  silentAfterMs: number;
  round: () => Promise<void>;
  onSilent: () => void;
  /** A scheduled round failed (the first round's failure goes to `start`'s caller). */
  onFailed: (error: unknown) => void;
}

export interface LeaseTicks {
  /** Runs the first round (its failure to `onFirstFailure`), then schedules the next ones. */
  start(onFirstFailure: (error: unknown) => void): Promise<void>;
  /** The round under way, if any. */
  running(): Promise<void> | undefined;
  /** No round is scheduled any more; one under way finishes. */
  end(): void;
  /** Whether `end` was called. */
  ended(): boolean;
}

/**
 * @example
 * const ticks = createLeaseTicks({ every: 1000, silentAfterMs: 5000, round, onSilent, onFailed });
 * await ticks.start((error) => report(error));
 * ticks.end();
 */
export function createLeaseTicks(settings: LeaseTicksSettings): LeaseTicks {
  const { every, silentAfterMs, round, onSilent, onFailed } = settings;
  let ended = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ticking: Promise<void> | undefined;

  const schedule = (delay: number) => {
    if (ended) return;
    timer = setTimeout(() => {
      const silent = setTimeout(onSilent, silentAfterMs);
      silent.unref?.();
      ticking = round()
        .catch(onFailed)
        .finally(() => {
          clearTimeout(silent);
          ticking = undefined;
          schedule(every);
        });
    }, delay);
  };

  return {
    async start(onFirstFailure) {
      ticking = round().catch(onFirstFailure);
      await ticking;
      schedule(every);
    },
    running: () => ticking,
    end() {
      ended = true;
      clearTimeout(timer);
    },
    ended: () => ended,
  };
}
