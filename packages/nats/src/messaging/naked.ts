/**
 * The messages a group reader naked with a delay (a release, a due time),
 * until they come back: their hand-outs so far (carried over to the return),
 * partition and holding. Kept by stream sequence with the time the message
 * was stored: a stream made again numbers its messages from 1 again, and the
 * same sequence stored at another time is another message.
 *
 * @example
 * const naked = createNakedMessages();
 * naked.add({ seq: 7, at: raw.info.timestampNanos, count: 2, partition: 0, epoch: 1 });
 * naked.back(7, raw.info.timestampNanos); // 2: the hand-outs before it went away
 */
export function createNakedMessages() {
  const naked = new Map<number, { count: number; partition: number; epoch: number; at: number }>();
  return {
    add(item: { seq: number; at: number; count: number; partition: number; epoch: number }) {
      naked.set(item.seq, { count: item.count, partition: item.partition, epoch: item.epoch, at: item.at });
    },
    /** The hand-outs of the message back from its delay (forgotten now); undefined for one not naked here. */
    back(seq: number, at: number): number | undefined {
      const item = naked.get(seq);
      // One of another stream's (made again since) is forgotten too: it went with that stream.
      if (item) naked.delete(seq);
      return item !== undefined && item.at === at ? item.count : undefined;
    },
    /** The stream sequences of `partition`'s messages that are away. */
    *in(partition: number): Generator<number> {
      for (const [seq, item] of naked) if (item.partition === partition) yield seq;
    },
    /** Forgets what the partition's holding `epoch` naked (given up: its messages are someone else's). */
    forget(partition: number, epoch: number) {
      for (const [seq, item] of naked) if (item.partition === partition && item.epoch === epoch) naked.delete(seq);
    },
  };
}
