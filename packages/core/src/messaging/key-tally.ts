/**
 * A subscription's deliveries not settled yet, counted per message key. Under
 * per-key order a key's later messages go out only once none of its earlier
 * ones is in flight, so a transport wakes its waiting receivers when a key's
 * count falls to zero.
 */
export interface KeyTally {
  /** A delivery of `key` was handed out. */
  handedOut(key: string): void;
  /** A delivery of `key` was settled (acknowledged or released); calls `onKeyFree` when it was the last. */
  settled(key: string): void;
  /** Keys with deliveries in flight. */
  readonly size: number;
}

/**
 * @example
 * const tally = createKeyTally(() => wake(topic));
 * tally.handedOut(delivery.message.key);
 * // … on ack or release:
 * tally.settled(delivery.message.key);
 */
export function createKeyTally(onKeyFree: (key: string) => void): KeyTally {
  const counts = new Map<string, number>();
  return {
    handedOut(key) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    settled(key) {
      const left = (counts.get(key) ?? 1) - 1;
      if (left > 0) {
        counts.set(key, left);
        return;
      }
      counts.delete(key);
      onKeyFree(key);
    },
    get size() {
      return counts.size;
    },
  };
}
