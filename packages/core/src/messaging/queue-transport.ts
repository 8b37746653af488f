import { StoreClosedError } from '../errors/index.ts';
import { checkSubscribeOptions } from '../options/core-options.ts';
import { assertName } from '../store/validation.ts';
import type { DeadLetterStore } from './consumer-ports.ts';
import type { Message } from './message.ts';
import { assertMessages } from './message-validation.ts';
import { checkTransportPublishOptions } from './publish-options.ts';
import type { Subscription, Transport, TransportBacklog } from './transport.ts';

/**
 * What an adapter's queue tables do, called by `createQueueTransport` with
 * arguments already checked: names are names, messages valid and never an
 * empty list, the transport open.
 */
export interface QueueOperations {
  /** True once `close` was called. */
  isClosed(): boolean;
  /**
   * One copy of each message per group declared for `topic`, atomically;
   * with `required` and no group, `NoSubscriptionError` and nothing written.
   * Wakes the groups' receivers.
   */
  publish(topic: string, messages: readonly Message[], required: boolean): void | Promise<void>;
  /**
   * The messages to `group` alone (a dead-letter redrive), and the group
   * declared (as `declare`) atomically with them; rejects unless every message
   * is written for the group.
   */
  redeliver(topic: string, group: string, messages: readonly Message[]): void | Promise<void>;
  /** Records the group: from now on it gets a copy of what is published to `topic`. */
  declare(topic: string, group: string): void | Promise<void>;
  /** Declares the group and opens a subscription to it with this visibility timeout (ms). */
  subscribe(topic: string, group: string, visibilityMs: number): Subscription;
  /** Messages waiting for `group` (not acknowledged) and the oldest one's `createdAt`, ms. */
  backlog(topic: string, group: string): TransportBacklog | Promise<TransportBacklog>;
  /** The dead-letter store on the same database (created once, on first use). */
  deadLetterStore(): DeadLetterStore | Promise<DeadLetterStore>;
  /** Marks the queue closed (`isClosed()` true from then on), ends its waits and connections. Called once. */
  close(): void | Promise<void>;
  /** A delayed release keeps its key's later messages back from every consumer (`TransportCapabilities`). */
  delayedReleaseHoldsKey?: boolean;
}

/** The visibility timeout of a subscription given none. */
const DEFAULT_VISIBILITY_MS = 30_000;

/**
 * The `Transport` port on a queue kept in database tables, the same on every
 * adapter: argument checks in one order (closed, names, messages, options),
 * the capabilities (delays, per-key order, competing consumers, durable; dead
 * letters go to the consumer's store), an empty publish writing nothing, the
 * dead-letter store created once and tried again after a failed creation.
 * `extra` holds the adapter's own fields (its connection).
 *
 * @example
 * return createQueueTransport({ isClosed: () => closed, publish, redeliver, declare, subscribe, backlog, deadLetterStore, close }, { database });
 */
export function createQueueTransport<Extra extends object>(queue: QueueOperations, extra: Extra): Transport & Extra {
  const assertOpen = () => {
    if (queue.isClosed()) throw new StoreClosedError('transport');
  };
  const checkGroup = (topic: string, group: string) => {
    assertOpen();
    assertName(topic, 'topic');
    assertName(group, 'group');
  };
  let deadLetters: Promise<DeadLetterStore> | undefined;

  return {
    ...extra,
    capabilities: {
      delayedDelivery: true,
      deadLettering: false,
      perKeyOrder: true,
      competingConsumers: true,
      delayedReleaseHoldsKey: queue.delayedReleaseHoldsKey === true,
      durable: true,
    },

    async publish(topic, messages, options) {
      assertOpen();
      assertName(topic, 'topic');
      assertMessages(messages);
      const required = checkTransportPublishOptions(options);
      if (messages.length > 0) await queue.publish(topic, messages, required);
    },

    async redeliver(topic, group, messages) {
      checkGroup(topic, group);
      assertMessages(messages);
      if (messages.length > 0) await queue.redeliver(topic, group, messages);
    },

    async declareSubscription(topic, group) {
      checkGroup(topic, group);
      await queue.declare(topic, group);
    },

    subscribe(topic, group, given) {
      const options = checkSubscribeOptions(given) ?? {};
      checkGroup(topic, group);
      return queue.subscribe(topic, group, options.visibilityTimeoutMs ?? DEFAULT_VISIBILITY_MS);
    },

    async backlog(topic, group) {
      checkGroup(topic, group);
      return queue.backlog(topic, group);
    },

    defaultDeadLetterStore() {
      if (queue.isClosed()) return Promise.reject(new StoreClosedError());
      // Memoised; a failed creation (the database unreachable) is tried again on the next call.
      deadLetters ??= (async () => queue.deadLetterStore())().catch((error: unknown) => {
        deadLetters = undefined;
        throw error;
      });
      return deadLetters;
    },

    async close() {
      if (!queue.isClosed()) await queue.close();
    },
  };
}
