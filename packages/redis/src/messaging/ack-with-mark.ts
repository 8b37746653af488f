import type { Delivery } from '@factline/core';

/**
 * Package-internal: a delivery of the Redis transport carries what its ack
 * needs under this key, so the Redis inbox, when it works on the same server
 * (the same `serverIdentity`, whatever URL each was given), acknowledges the stream entry in the script that writes the
 * mark: one round trip instead of two. The script first checks the partition
 * lease still holds the reader's token (the fencing check); when another
 * reader holds it, neither mark nor ack is written and the delivery is left
 * to the new holder.
 */
export const ackWithMark = Symbol('factline.redis.ackWithMark');

/**
 * Who held a partition's lease when a fenced ack, release or renewal found it not this reader's: another reader,
 * or none (it ran out).
 */
export type LeaseHolder = 'another' | 'none';

/** Where a partition's entries are acked, and the lease that fences the ack. */
export interface AckTarget {
  /** The transport's server (`serverIdentity`): the inbox acks here only when it talks to the same one. */
  server: string;
  stream: string;
  group: string;
  /** The partition's lease key, and the value it holds while this reader has the partition. */
  lease: string;
  token: string;
}

export interface AckWithMark {
  target: AckTarget;
  /** The stream entry id. */
  id: string;
  /** True while the delivery may still be settled (not settled already, not handed out again). */
  current(): boolean;
  /** The script acknowledged the entry with the mark: the delivery is settled. */
  acked(): void;
  /**
   * The lease was not the reader's (another holds it, or none: it ran out): nothing was written; the delivery is
   * left to the next holder.
   */
  fenced(holder: LeaseHolder): void;
}

export function ackWithMarkOf(delivery: Delivery | undefined): AckWithMark | undefined {
  return (delivery as { [ackWithMark]?: AckWithMark } | undefined)?.[ackWithMark];
}
