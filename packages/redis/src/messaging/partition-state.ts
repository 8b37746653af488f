/** What a group reader knows of one partition of its topic. */
export interface PartitionState {
  held: boolean;
  /** Claimed what the previous holders left pending: new entries may be read. */
  ready: boolean;
  /** Where the claim of what the previous holders left pending goes on (`0-0`: from the first entry). */
  claimFrom: string;
  /** The last claim of what the previous holders left pending failed: tried again at the next tick. */
  claimFailed: boolean;
  generation: number;
  /**
   * When the lease ends, on `performance.now()` (monotonic: a wall clock stepped back would stretch the lease here
   * past its end in Redis), counted from the asking for it or its last renewal.
   */
  expiresAt: number;
  /**
   * Giving the partition up for a fairer share: nothing new goes out; handed back once nothing is in flight, or
   * kept when that takes too long (fair-share.ts).
   */
  draining: boolean;
  /** The last entry id read or claimed under this generation (`0-0`: none): later pending ones were never seen here. */
  lastSeen: string;
}

/** A partition this reader does not hold. */
export const unheldPartition = (): PartitionState => ({
  held: false,
  ready: false,
  claimFrom: '0-0',
  claimFailed: false,
  generation: 0,
  expiresAt: 0,
  draining: false,
  lastSeen: '0-0',
});

/**
 * `state`'s lease just taken, until `expiresAt`: a new generation whose first work is to claim, from the first
 * entry, what the previous holders left pending.
 *
 * @example
 * if (Number(taken) === 1) takeOver(state, asked + leaseMs);
 */
export function takeOver(state: PartitionState, expiresAt: number): void {
  state.held = true;
  state.ready = false;
  state.claimFrom = '0-0';
  state.claimFailed = false;
  state.draining = false;
  state.generation += 1;
  state.expiresAt = expiresAt;
  state.lastSeen = '0-0';
}
