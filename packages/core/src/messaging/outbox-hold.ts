import { isNoSubscriptionError } from '../errors/index.ts';
import { systemOf, traceSend } from '../tracing/messaging-spans.ts';
import type { Message } from './message.ts';
import type { RelayStatus } from './relay-status.ts';
import type { Transport } from './transport.ts';

export interface OutboxHoldOptions {
  /** The first wait before a held topic is tried again, ms (a relay's `pollMs`). */
  initialMs: number;
  /** The longest wait, ms: the wait doubles on every hold up to this. */
  maxMs: number;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * How an outbox relay holds the rows of a topic nobody subscribed to yet, or
 * whose publish the transport refused as not retryable (`retryable: false`:
 * a message it cannot carry, a queue declared with other arguments): it
 * publishes with `requireSubscription`, and on `NoSubscriptionError` or a
 * refusal keeps the rows, reports the hold, and leaves the topic out of its
 * reads until a backoff has passed. The rows of a held topic are never
 * published past, so they go out in outbox order once a subscription is
 * declared or the refusal ends; the other topics go on meanwhile. Any other
 * failure (an outage) fails the round.
 */
export interface OutboxHold {
  /** Held topics whose next try is not due yet: the relay's next read leaves their rows out. */
  skipped(): string[];
  /**
   * Publishes one run of `topic`'s rows. True when published; false when held
   * (reported through the relay status): keep the rows, and publish no later
   * row of the topic in this round.
   */
  publish(transport: Transport, topic: string, messages: readonly Message[]): Promise<boolean>;
  /**
   * A read that left out `skipped` found every row waiting (a short page) and these topics among them: a held
   * topic it read and found no row of has none left (deleted by hand), so it is held no more.
   */
  readAll(skipped: readonly string[], present: ReadonlySet<string>): void;
}

/**
 * The hold shared by the outbox relays of every adapter.
 *
 * @example
 * const hold = createOutboxHold(status, { initialMs: pollMs, maxMs: holdBackoffMaxMs });
 * if (await hold.publish(transport, topic, messages)) deleteRows();
 */
/** A failure trying again cannot help: the error says so (`retryable: false`, on any error object). */
const isRefusal = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;

export function createOutboxHold(status: RelayStatus, options: OutboxHoldOptions): OutboxHold {
  const now = options.now ?? Date.now;
  /** Per held topic: consecutive holds, and when it may be tried again. */
  const topics = new Map<string, { holds: number; dueAt: number }>();
  return {
    skipped() {
      const at = now();
      return [...topics].filter(([, held]) => held.dueAt > at).map(([topic]) => topic);
    },
    async publish(transport, topic, messages) {
      try {
        await traceSend(systemOf(transport), topic, messages, () =>
          transport.publish(topic, messages, { requireSubscription: true }),
        );
      } catch (error) {
        const unsubscribed = isNoSubscriptionError(error);
        if (!unsubscribed && !isRefusal(error)) throw error;
        const holds = (topics.get(topic)?.holds ?? 0) + 1;
        const wait = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(holds - 1, 30));
        topics.set(topic, { holds, dueAt: now() + Math.max(1, wait) });
        if (unsubscribed) status.hold(topic, error);
        else status.refuse(topic, error);
        return false;
      }
      if (topics.delete(topic)) status.unhold(topic);
      return true;
    },
    readAll(skipped, present) {
      for (const topic of [...topics.keys()]) {
        if (skipped.includes(topic) || present.has(topic)) continue;
        topics.delete(topic);
        status.unhold(topic);
      }
    },
  };
}
