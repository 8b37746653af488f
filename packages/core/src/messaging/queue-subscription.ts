import { isFactlineError, StoreClosedError } from '../errors/index.ts';
import { createLeasedDeliveries, type LeasedRow } from './leased-deliveries.ts';
import { type Message, messageFromJson } from './message.ts';
import type { ReceiveWakeups } from './receive-wakeups.ts';
import type { Delivery, Subscription } from './transport.ts';

/** A row a claim handed out, for `createQueueSubscription` to make a delivery of. */
export interface ClaimedMessage {
  /** The message as stored (`messageToJson`). */
  message: string;
  /**
   * The same message already revived (an adapter that read it to learn its
   * key): handed out as it is instead of parsing `message` again. Give it for
   * one hand-out only, since a handler may change the object it gets.
   */
  parsed?: Message;
  deliveryCount: number;
  /** The row's settle statements under the lease it was handed out with. */
  row: LeasedRow;
  /**
   * More fields of the delivery (an adapter's hook for acking inside an inbox
   * transaction), given the callback that tells the delivery its ack committed there.
   */
  extra?(committed: () => void): object;
}

export interface QueueSubscriptionOptions {
  /** The transport's wake-ups; `channel` is this subscription's (a topic, or a topic and group). */
  wakeups: ReceiveWakeups;
  channel: string;
  /** True once the transport closed. */
  closed(): boolean;
  /** Claims up to `max` (≥ 1) rows due now, in order (an empty array when nothing is due). */
  take(max: number): ClaimedMessage[] | Promise<ClaimedMessage[]>;
  /** How long to wait, at most `left` ms, before looking again (e.g. until the next delayed row is due). */
  pause(left: number): number | Promise<number>;
  /** Runs before a receive's first look, given its wait in ms (register the group, start listening). */
  prepare?(waitMs: number): void | Promise<void>;
  /**
   * When a receive fails with a retryable error (the database unreachable),
   * it reports the error only after its wait, at most this many ms, so a
   * caller that simply receives again does not spin. Default: at once.
   */
  retryPauseMs?: number;
}

/**
 * A subscription of a queue transport: `receive` looks for due rows and,
 * while there are none, waits for a wake-up on its channel or the adapter's
 * pause, until its wait passed, its signal aborted, or a close. A wake-up
 * that comes while a look is in flight ends the next wait at once. Under
 * per-key order a key's later rows go out once nothing of it is in flight, so
 * the channel is woken when a key's last delivery here is settled.
 *
 * @example
 * return createQueueSubscription({
 *   wakeups, channel: topic, closed: () => closed,
 *   take: (max) => claim(max).map((row) => ({ message: row.message, deliveryCount: row.count, row: leased(row) })),
 *   pause: (left) => Math.min(left, pollIntervalMs),
 * });
 */
export function createQueueSubscription(options: QueueSubscriptionOptions): Subscription {
  const { wakeups, channel } = options;
  const waits = wakeups.waits(channel);
  const deliveries = createLeasedDeliveries(() => wakeups.wake(channel));
  const deliver = (claimed: ClaimedMessage): Delivery => {
    const message = claimed.parsed ?? messageFromJson(claimed.message);
    const settle = deliveries.handOut(message.key, claimed.row);
    const delivery: Delivery = {
      message,
      deliveryCount: claimed.deliveryCount,
      ack: settle.ack,
      release: settle.release,
      extend: settle.extend,
    };
    return claimed.extra ? Object.assign(delivery, claimed.extra(settle.committed)) : delivery;
  };
  let subscriptionClosed = false;
  const ended = () => options.closed() || subscriptionClosed;

  const look = async (max: number, deadline: number, signal: AbortSignal): Promise<Delivery[]> => {
    for (;;) {
      const seen = waits.generation();
      const found = await options.take(max);
      if (found.length > 0) return found.map(deliver);
      if (signal.aborted || ended()) return [];
      const left = deadline - Date.now();
      if (left <= 0) return [];
      await waits.wait(seen, await options.pause(left), signal);
      if (signal.aborted || ended()) return [];
    }
  };

  return {
    async receive(max: number, waitMs: number, signal: AbortSignal): Promise<Delivery[]> {
      if (ended()) throw new StoreClosedError('transport');
      const limit = Math.floor(Number(max));
      if (!(limit > 0) || signal?.aborted) return [];
      const wait = Math.max(0, Number(waitMs) || 0);
      const deadline = Date.now() + wait;
      try {
        await options.prepare?.(wait);
        return await look(limit, deadline, signal);
      } catch (error) {
        if (options.retryPauseMs !== undefined && isFactlineError(error) && error.retryable && !ended()) {
          const pause = Math.min(Math.max(0, deadline - Date.now()), options.retryPauseMs);
          await waits.wait(waits.generation(), pause, signal);
        }
        throw error;
      }
    },
    async close() {
      subscriptionClosed = true;
      waits.close();
    },
  };
}
