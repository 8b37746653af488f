/**
 * The releases one group reader sent to delay tiers and not back yet: a
 * tier queue is shared by every group of the application, so its depth
 * cannot be told per group; each hop counts from its confirm until its
 * tier's TTL has passed (by then it is back in its group queue, counted
 * there). Per tier the return times rise, so the passed ones are dropped
 * from the front.
 *
 * @example
 * const away = createAwayCount();
 * away.add(4096); // a release confirmed into the 4096 ms tier
 * away.count(); // 1, until 4096 ms have passed
 */
export function createAwayCount(now: () => number = Date.now) {
  /** Per tier, when each hop comes back (ms since the epoch), oldest first. */
  const byTier = new Map<number, number[]>();
  const prune = (returns: number[], at: number) => {
    let passed = 0;
    while (passed < returns.length && (returns[passed] as number) <= at) passed += 1;
    if (passed > 0) returns.splice(0, passed);
  };
  return {
    add(tier: number) {
      const at = now();
      const returns = byTier.get(tier) ?? [];
      byTier.set(tier, returns);
      prune(returns, at);
      returns.push(at + tier);
    },
    count(): number {
      const at = now();
      let n = 0;
      for (const returns of byTier.values()) {
        prune(returns, at);
        n += returns.length;
      }
      return n;
    },
  };
}
