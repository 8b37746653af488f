/** Time as the timer poller reads and waits for it: the system's, or a virtual one in tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `callback` once, `ms` from now; returns what cancels it. */
  setTimer(callback: () => void, ms: number): () => void;
}

/** The system clock: `Date.now` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, ms) {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
};

/** A clock that moves only when told to: timers set on it run during `advance` (those due already, at once). */
export interface VirtualClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due, in due order. */
  advance(ms: number): void;
}

/**
 * A virtual clock starting at `start` (ms since the epoch).
 *
 * @example
 * const clock = createVirtualClock(Date.parse('2026-01-01T00:00:00Z'));
 * clock.advance(15 * 60_000);
 */
export function createVirtualClock(start = 0): VirtualClock {
  let now = start;
  let sequence = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    now: () => now,
    setTimer(callback, ms) {
      if (ms <= 0) {
        // Due already: runs at once (on a microtask), as no `advance` may come.
        let cancelled = false;
        queueMicrotask(() => cancelled || callback());
        return () => {
          cancelled = true;
        };
      }
      const id = sequence++;
      timers.set(id, { at: now + Math.max(0, ms), callback });
      return () => timers.delete(id);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        let next: [number, { at: number; callback: () => void }] | undefined;
        for (const entry of timers) if (entry[1].at <= until && (!next || entry[1].at < next[1].at)) next = entry;
        if (!next) break;
        timers.delete(next[0]);
        now = Math.max(now, next[1].at);
        next[1].callback();
      }
      now = until;
    },
  };
}
