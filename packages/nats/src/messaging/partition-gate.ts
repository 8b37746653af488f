import type { JsMsg } from '@nats-io/jetstream';

/** What a gate reads from the server and the process. */
export interface GateSources {
  /** The consumer's `num_ack_pending`: delivered to someone, not yet acknowledged. */
  ackPending(): Promise<number>;
  /** The highest stream sequence the consumer has delivered. */
  deliveredSeq(): Promise<number>;
  /**
   * The stream sequences of the partition's pending messages this process holds (handed out, held or naked with
   * a delay), repeats allowed.
   */
  ours(): Iterable<number>;
  /** Hands a message on to the buffer. */
  pass(raw: JsMsg): void;
}

/**
 * Holds a partition's messages back while messages delivered before are
 * pending elsewhere: after a takeover (the previous holder died or gave the
 * partition up) or a pull lost with a connection. A closed gate keeps what
 * comes until the consumer's `num_ack_pending` is no more than what this
 * process holds (waiting here included, each message once by its stream
 * sequence: one naked with a delay, or held, may come back or be delivered
 * again while it still counts there): nobody else holds one of the
 * partition's messages, so none of a key's earlier messages can still be
 * running; then it passes them on in stream order (the inherited ones come
 * back when their ack wait ends, in no particular order). Without it a key's
 * next message could run while another process still runs (or lost) its
 * earlier one.
 *
 * @example
 * const gate = createPartitionGate({ ackPending, deliveredSeq, ours, pass });
 * await gate.close(); // after the claim, or a failed pull
 * for await (const raw of batch) gate.offer(raw);
 * await gate.check();
 */
export function createPartitionGate(sources: GateSources) {
  /** The last stream sequence delivered when the gate closed; undefined when open. */
  let above: number | undefined;
  /** Pending elsewhere at the last check. */
  let elsewhere = 0;
  let waiting: JsMsg[] = [];

  const open = () => {
    above = undefined;
    // Stable: a message delivered again passes after its earlier delivery (the newer one is the one to settle).
    const out = waiting.sort((a, b) => a.seq - b.seq);
    waiting = [];
    for (const raw of out) sources.pass(raw);
  };

  return {
    /** Closes the gate if anything delivered before is pending beyond what this process holds. */
    async close() {
      const seq = await sources.deliveredSeq();
      above = Math.max(above ?? 0, seq);
      await this.check();
    },
    /** Opens the gate once nothing of the partition is pending elsewhere. */
    async check() {
      if (above === undefined) return;
      const pending = await sources.ackPending();
      const ours = new Set(sources.ours());
      for (const raw of waiting) ours.add(raw.seq);
      elsewhere = Math.max(0, pending - ours.size);
      if (elsewhere === 0) open();
    },
    offer(raw: JsMsg) {
      if (above !== undefined) waiting.push(raw);
      else sources.pass(raw);
    },
    isOpen: () => above === undefined,
    /** How many of the partition's messages were pending elsewhere at the last check. */
    missing: () => elsewhere,
    size: () => waiting.length,
    /** Keeps the waiting messages from coming back at the ack wait (`send`: how `working()` is sent to each). */
    working(send: (raw: JsMsg) => void = (raw) => raw.working()) {
      for (const raw of waiting) send(raw);
    },
    /**
     * The partition is given up: its waiting messages go back to the server at once through `nak` (`false`: only
     * dropped, their consumer gone).
     */
    giveBack(nak: ((raw: JsMsg) => void) | false = (raw) => raw.nak()) {
      if (nak) for (const raw of waiting) nak(raw);
      waiting = [];
      above = undefined;
    },
  };
}

export type PartitionGate = ReturnType<typeof createPartitionGate>;
