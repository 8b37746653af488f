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
 * How an outbox relay holds the rows of a topic nobody subscribed to yet:
 * it publishes with `requireSubscription`, and on `NoSubscriptionError` keeps
 * the rows, reports the hold, and leaves the topic out of its reads until a
 * backoff has passed. The rows of a held topic are never published past, so
 * they go out in outbox order once a subscription is declared.
 */
export interface OutboxHold {
  /** Held topics whose next try is not due yet: the relay's next read leaves their rows out. */
  skipped(): string[];
  /**
   * Publishes one run of `topic`'s rows. True when published; false when held
   * (reported through the relay status, nothing written): keep the rows, and
   * publish no later row of the topic in this round.
   */
  publish(transport: Transport, topic: string, messages: readonly Message[]): Promise<boolean>;
}

/**
 * The hold shared by the outbox relays of every adapter.
 *
 * @example
 * const hold = createOutboxHold(status, { initialMs: pollMs, maxMs: holdBackoffMaxMs });
 * if (await hold.publish(transport, topic, messages)) deleteRows();
 */
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
        if (!isNoSubscriptionError(error)) throw error;
        const holds = (topics.get(topic)?.holds ?? 0) + 1;
        const wait = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(holds - 1, 30));
        topics.set(topic, { holds, dueAt: now() + Math.max(1, wait) });
        status.hold(topic, error);
        return false;
      }
      if (topics.delete(topic)) status.unhold(topic);
      return true;
    },
  };
}
