import type { Channel, ConsumeMessage } from 'amqplib';

/** The part of an amqplib channel an acker settles deliveries on. */
export type AckChannel = Pick<Channel, 'ack' | 'nack'>;

/**
 * Settles the deliveries of one channel, coalescing acknowledgements: the
 * acks asked for together (in one run of the microtask queue, as the runs of
 * one group commit are) go out together once that run ended, before the event
 * loop reads sockets or runs timers again (not a turn later: the broker's
 * prefetch window refills a commit sooner), as one `basic.ack` with `multiple: true` for every acked delivery
 * below the channel's oldest unsettled one (all of those are settled, so the
 * multiple ack covers nothing else), and one ack each for the rest. A
 * delivery is acknowledged only once `ack` was called for it; a channel that
 * closes before the flush gives its unflushed deliveries back to the broker
 * (redelivered: at least once, never lost). Tags rise on a channel
 * (AMQP 0-9-1), which is what makes the lowest unsettled tag a safe bound.
 *
 * @example
 * const acker = createAcker(channel);
 * await channel.consume(queue, (raw) => raw && acker.delivered(raw));
 * acker.ack(raw); // after the handler's transaction committed
 */
export function createAcker(channel: AckChannel, schedule: (flush: () => void) => void = afterMicrotasks) {
  /** Delivered on this channel and neither acked nor nacked yet. */
  const unsettled = new Set<number>();
  /** Those of them left out of `outstanding()` (dead letters on their way to the store). */
  const uncounted = new Set<number>();
  let waiting: ConsumeMessage[] = [];
  let scheduled = false;
  let closed = false;

  const flush = () => {
    scheduled = false;
    if (closed || waiting.length === 0) return;
    const acks = waiting;
    waiting = [];
    let lowest = Number.POSITIVE_INFINITY;
    for (const tag of unsettled) if (tag < lowest) lowest = tag;
    // The highest ack below every unsettled delivery covers all acks below it at once.
    let cover: ConsumeMessage | undefined;
    for (const raw of acks) {
      const tag = raw.fields.deliveryTag;
      if (tag < lowest && (!cover || tag > cover.fields.deliveryTag)) cover = raw;
    }
    try {
      if (cover) channel.ack(cover, true);
      for (const raw of acks) if (raw.fields.deliveryTag >= lowest) channel.ack(raw);
    } catch {
      // The channel closed: the broker takes back what it did not get an ack for and hands it out again.
      closed = true;
    }
  };

  return {
    /** A delivery arrived on the channel: it is unsettled until acked or nacked here; `counted`: in `outstanding()`. */
    delivered(raw: ConsumeMessage, counted = true) {
      unsettled.add(raw.fields.deliveryTag);
      if (!counted) uncounted.add(raw.fields.deliveryTag);
    },
    /** How many counted deliveries are unsettled: the broker holds them as unacknowledged. */
    outstanding: () => unsettled.size - uncounted.size,
    /**
     * Acknowledges `raw` with the next flush (once the microtasks queued meanwhile have run); false when
     * the channel is gone (the broker took the delivery back).
     */
    ack(raw: ConsumeMessage): boolean {
      if (closed) return false;
      // Once only: a second ack of a tag would close the channel (PRECONDITION_FAILED).
      if (!unsettled.delete(raw.fields.deliveryTag)) return true;
      uncounted.delete(raw.fields.deliveryTag);
      waiting.push(raw);
      if (!scheduled) {
        scheduled = true;
        schedule(flush);
      }
      return true;
    },
    /** Rejects `raw` at once (to the dead-letter exchange, or back to its queue with `requeue`). */
    nack(raw: ConsumeMessage, requeue: boolean) {
      if (closed || !unsettled.delete(raw.fields.deliveryTag)) return;
      uncounted.delete(raw.fields.deliveryTag);
      try {
        channel.nack(raw, false, requeue);
      } catch {
        // As in flush.
        closed = true;
      }
    },
    /** Sends the acks waiting for the next flush now (before the channel closes at a stop). */
    flush,
    /** The channel is gone: the broker took back every unsettled delivery; later calls do nothing. */
    close() {
      closed = true;
      waiting = [];
      unsettled.clear();
      uncounted.clear();
    },
  };
}

/**
 * Runs `flush` once the microtask queue has drained: a tick queued from a
 * microtask runs after every microtask queued before it ends, so the acks that
 * one commit's continuations ask for go out in one flush.
 */
const afterMicrotasks = (flush: () => void) => queueMicrotask(() => process.nextTick(flush));

export type Acker = ReturnType<typeof createAcker>;
