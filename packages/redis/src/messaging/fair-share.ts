import type { PartitionState } from './partition-state.ts';
import type { Entry, GroupBuffer } from './receive.ts';

/** What giving partitions up for a fair share needs from its group reader. */
export interface FairShareTarget {
  /** The reader's partitions: `draining` is set here; losing or handing back a partition clears it. */
  states: readonly PartitionState[];
  /**
   * The reader's buffer: its deliveries in hands (`inFlight`), those or an ack or release on its way to Redis
   * (`busy`); `wake` once a drain ends (its keys may go out again).
   */
  buffer: Pick<GroupBuffer, 'inFlight' | 'busy' | 'wake'>;
  /** Hands the partition's pending entries back and frees its lease. */
  handBack(partition: number): Promise<void>;
  /** Ends the read in flight: the next one leaves a draining partition out, or takes one no longer draining in. */
  reread(): void;
  /**
   * The partition leases' time: a drain waits twice that for the partition's deliveries in hands, then ends with
   * the partition kept (leaseMs exceeds the longest handler: what is out longer waits for a delayed retry).
   */
  leaseMs: number;
}

/**
 * Gives partitions above the fair share up, one at a time: the one with the
 * fewest deliveries in hands drains (nothing of it goes out, nothing more
 * is read) and is handed back once nothing of it is in hands or on its way
 * to Redis. A drain still waiting for deliveries after twice `leaseMs` (a
 * delayed retry holds its key for as long as its delay) ends, the partition
 * kept and its keys handed out again, and that partition is not drained
 * again while one of those deliveries is still out: another is, or this one
 * once they are settled. Its keys are held back for at most twice
 * `leaseMs` per drain, and no partition ever moves with a delivery in
 * hands (its key would run on two readers at once).
 *
 * @example
 * const fairShare = createFairShare({ states, buffer, handBack, reread: newEntries.rereadNow, leaseMs });
 * let held = await fairShare.giveUp(Math.ceil(partitions / liveReaders));
 */
export function createFairShare(target: FairShareTarget) {
  const { states, buffer } = target;
  const drainForMs = 2 * target.leaseMs;
  /** Per partition, when its drain started (`performance.now()`). */
  const drainingSince = states.map(() => 0);
  /** Per partition, the deliveries its last drain ended waiting for, and the lease generation they went out under. */
  const outlasted: ({ generation: number; entries: readonly Entry[] } | undefined)[] = states.map(() => undefined);

  /** True while a delivery that outlasted the partition's last drain is still in hands (under the same lease). */
  const holdsOut = (partition: number) => {
    const last = outlasted[partition];
    if (!last) return false;
    if (last.generation === (states[partition] as PartitionState).generation) {
      const out = new Set(buffer.inFlight(partition));
      if (last.entries.some((entry) => out.has(entry))) return true;
    }
    outlasted[partition] = undefined;
    return false;
  };

  /** The partition to give up: held, not held out, the fewest deliveries in hands (then none on its way), the first. */
  const pick = () => {
    let best: number | undefined;
    let bestRank = Number.POSITIVE_INFINITY;
    for (let p = 0; p < states.length; p++) {
      const state = states[p] as PartitionState;
      if (!state.held || state.draining || holdsOut(p)) continue;
      const rank = 2 * buffer.inFlight(p).length + (buffer.busy(p) ? 1 : 0);
      if (rank < bestRank) {
        best = p;
        bestRank = rank;
      }
    }
    return best;
  };

  return {
    /**
     * One round: hands back the drained partition once nothing of it is busy, ends its drain past twice `leaseMs`,
     * and starts one when more than `share` are held and none drains. Resolves how many partitions are held.
     */
    async giveUp(share: number): Promise<number> {
      for (let p = 0; p < states.length; p++) {
        const state = states[p] as PartitionState;
        if (!state.held || !state.draining) continue;
        if (!buffer.busy(p)) {
          await target.handBack(p);
          continue;
        }
        const out = buffer.inFlight(p);
        // Acks and releases on their way alone end within the command deadline: waited for.
        if (out.length === 0 || performance.now() - (drainingSince[p] as number) < drainForMs) continue;
        state.draining = false;
        outlasted[p] = { generation: state.generation, entries: out };
        target.reread();
        buffer.wake();
      }
      // Counted after the hand-backs: a partition may also have been lost while one was answered.
      const held = states.filter((s) => s.held).length;
      if (held > share && !states.some((s) => s.held && s.draining)) {
        const give = pick();
        if (give !== undefined) {
          (states[give] as PartitionState).draining = true;
          drainingSince[give] = performance.now();
          target.reread();
        }
      }
      return held;
    },
  };
}
