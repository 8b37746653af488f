import { StoreClosedError } from '../errors/index.ts';
import { checkSubscribeOptions } from '../options/core-options.ts';
import { assertName } from '../store/validation.ts';
import type { DeadLetterStore } from './consumer-ports.ts';
import type { Message } from './message.ts';
import { assertMessages } from './message-validation.ts';
import { checkTransportPublishOptions } from './publish-options.ts';
import type { TransportCapabilities, TransportPublishOptions } from './transport.ts';

/**
 * What a transport keeping its queues in database tables does natively: every
 * group's rows stay until acked, delays and visibility timeouts are a column,
 * per-key order is kept by the claim. Dead letters are the consumer's
 * (`defaultDeadLetterStore`).
 */
export const queueTransportCapabilities: Readonly<TransportCapabilities> = Object.freeze({
  delayedDelivery: true,
  deadLettering: false,
  perKeyOrder: true,
  competingConsumers: true,
  durable: true,
});

/** The visibility timeout of a subscription given none. */
const DEFAULT_VISIBILITY_MS = 30_000;

const assertOpen = (closed: boolean) => {
  if (closed) throw new StoreClosedError('transport');
};

/**
 * `publish`'s argument checks on a queue transport (closed first, then the
 * topic, the messages, the options: one order on every adapter). Returns
 * whether the publish requires a declared subscription.
 *
 * @example
 * const required = checkQueuePublish(closed, topic, messages, options);
 * if (messages.length === 0) return;
 */
export function checkQueuePublish(
  closed: boolean,
  topic: string,
  messages: readonly Message[],
  options: TransportPublishOptions | undefined,
): boolean {
  assertOpen(closed);
  assertName(topic, 'topic');
  assertMessages(messages);
  return checkTransportPublishOptions(options);
}

/** The checks of a method naming a topic and a group (`declareSubscription`). */
export function checkQueueGroup(closed: boolean, topic: string, group: string): void {
  assertOpen(closed);
  assertName(topic, 'topic');
  assertName(group, 'group');
}

/** `redeliver`'s checks: the topic, the group, then the messages. */
export function checkQueueRedeliver(closed: boolean, topic: string, group: string, messages: readonly Message[]): void {
  checkQueueGroup(closed, topic, group);
  assertMessages(messages);
}

/** `subscribe`'s checks (its options first); returns the subscription's visibility timeout in ms. */
export function checkQueueSubscribe(closed: boolean, topic: string, group: string, given: unknown): number {
  const options = checkSubscribeOptions(given) ?? {};
  checkQueueGroup(closed, topic, group);
  return options.visibilityTimeoutMs ?? DEFAULT_VISIBILITY_MS;
}

/**
 * A transport's `defaultDeadLetterStore()`: the store is created on the first
 * call and shared by every later one; a creation that fails (the database
 * unreachable) is tried again on the next call. Rejects with
 * `StoreClosedError` once `closed()` is true.
 *
 * @example
 * defaultDeadLetterStore: lazyDeadLetterStore(() => closed, () => getSqliteDeadLetterStore({ database })),
 */
export function lazyDeadLetterStore(
  closed: () => boolean,
  create: () => DeadLetterStore | Promise<DeadLetterStore>,
): () => Promise<DeadLetterStore> {
  let store: Promise<DeadLetterStore> | undefined;
  return () => {
    if (closed()) return Promise.reject(new StoreClosedError());
    store ??= (async () => create())().catch((error: unknown) => {
      store = undefined;
      throw error;
    });
    return store;
  };
}
