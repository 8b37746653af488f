import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { checkOptions, type OptionSpecOf } from '../options/check-options.ts';
import { checkEventBusOptions, schemasOption } from '../options/core-options.ts';
import { encodeMessages } from '../schema/encode-messages.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import { isPlainObject } from '../store/json-checks.ts';
import { assertName } from '../store/validation.ts';
import { messageAttributes, systemOf, traceSend } from '../tracing/messaging-spans.ts';
import { tracingOn } from '../tracing/otel.ts';
import { currentTraceFields } from '../tracing/trace-context.ts';
import { type Consumer, type ConsumerOptions, createConsumer } from './consumer.ts';
import { decodingHandler } from './consumer-decode.ts';
import { createMessage, type Message, type MessageInput } from './message.ts';
import type { Transport } from './transport.ts';

export interface EventBusOptions {
  transport: Transport;
  /** The topic every event goes through. Default `'events'`. */
  topic?: string;
  /**
   * The message types' schemas: `publish` validates each message of a
   * defined type and stamps its version (`factline-schema-version`), as the
   * outboxes' `schemas` do, and every subscription decodes with it unless it
   * is given its own. A message published without the header is read as
   * version 1 by a consumer that decodes.
   */
  schemas?: SchemaRegistry;
}

/** What `publish` may set beside the type and data (id, key, metadata, headers, delayed delivery). */
export type PublishOptions = Omit<MessageInput, 'type' | 'data'>;

const publishOptionNames: OptionSpecOf<PublishOptions> = {
  id: 'any',
  key: 'any',
  metadata: 'any',
  headers: 'any',
  deliverAt: 'any',
};

/** Consumer settings for one subscription (retry policy, inbox, dead letters, concurrency, …). */
export type SubscriberOptions<Tx = undefined> = Omit<ConsumerOptions<Tx>, 'name' | 'topic' | 'transport' | 'handler'>;

/** Handles one event; `tx` is the SQL inbox's transaction when the subscription has one (see `createConsumer`). */
export type EventHandler<Tx = undefined> = (message: Message, tx: Tx) => unknown;

export interface EventBus {
  readonly topic: string;
  /** Builds a message (correlation inherited inside a handler) and publishes it; resolves to what was published. */
  publish<Type extends string, Data>(type: Type, data: Data, options?: PublishOptions): Promise<Message<Type, Data>>;
  /**
   * Subscribes a consumer group to some event types. The group receives every
   * event of the topic; those of other types are acknowledged without calling
   * the handler. Subscribing while the bus runs starts the consumer at once.
   */
  subscribe<Tx = undefined>(
    group: string,
    types: readonly string[],
    handler: EventHandler<Tx>,
    options?: SubscriberOptions<Tx>,
  ): Consumer;
  /**
   * Starts every subscription; resolves once each group's subscription is
   * declared with the transport, so what is published from then on reaches it.
   * All or nothing: when one fails to start (reported through its `onError`
   * and logger, stage `'start'`), those that started are stopped and `start()`
   * rejects with the first failure; calling it again starts them all.
   */
  start(): Promise<void>;
  /** Stops every subscription (handlers in flight finish). The transport stays open: its owner closes it. */
  stop(): Promise<void>;
}

/**
 * A small publish/subscribe facade over a transport and the consumer runtime.
 *
 * Every consumer group subscribed to the bus receives every event (fan-out);
 * groups are independent: each has its own position, retries, inbox and dead
 * letters, so a failing handler in one group holds back or dead-letters only
 * that group's copy. Within a group delivery is at least once, in order per
 * message key, and the consumer's inbox drops repeats by message id.
 *
 * A group receives what is published after its subscription was declared
 * (by `bus.start()`, or `transport.declareSubscription` in a deploy step), so
 * declare or start the subscriptions before the first publish: a plain
 * publish to a topic with no subscription is dropped. Relays publish with
 * `requireSubscription` and hold their rows until one is declared.
 *
 * Events appended to an event store reach the bus through the store-as-outbox
 * relay, run by the adapter's projection runner, on the bus's topic:
 *
 * @example
 * const bus = createEventBus({ transport });
 * bus.subscribe('inventory', ['OrderPlaced'], reserveStock);
 * bus.subscribe('notification', ['OrderPlaced', 'OrderShipped'], notify);
 * await bus.start();
 * const relay = defineEventRelay({ name: 'order-events', transport, topic: bus.topic, handles: ['OrderPlaced', 'OrderShipped'] });
 * const runner = await startSqliteProjections(store, [relay]);
 * // … append events; each group gets each one, with the append's correlation id …
 * await runner.stop();
 * await bus.stop();
 * await transport.close();
 *
 * Messages published from inside a handler inherit the handled message's
 * correlation id and get its id as causation id.
 */
export function createEventBus(options: EventBusOptions): EventBus {
  checkEventBusOptions(options);
  if (!options?.transport) throw new ValidationError({ path: 'transport', message: 'is required' });
  const topic = options.topic ?? 'events';
  assertName(topic, 'topic');
  const { transport } = options;
  const busSchemas = options.schemas;
  /** The message validated and stamped with its type's version, with `schemas`; as it is without. */
  const encoded = async <M extends Message>(message: M): Promise<M> =>
    busSchemas ? (((await encodeMessages(busSchemas, [message])) as Message[])[0] as M) : message;
  const consumers = new Map<string, Consumer>();
  let running = false;

  return {
    topic,

    async publish(type, data, publishOptions = {}) {
      // The names only: the values are checked by createMessage, with the message's other fields.
      checkOptions(publishOptions, publishOptionNames, 'bus.publish options');
      if (!tracingOn()) {
        const message = await encoded(createMessage({ ...publishOptions, type, data }));
        await transport.publish(topic, [message]);
        return message;
      }
      // Traced: the message is sent in a `send` span and names that span as its producer.
      return traceSend(systemOf(transport), topic, undefined, async (span) => {
        const given = publishOptions.metadata;
        // Metadata that is not an object goes to createMessage as it is, to be refused as without tracing.
        const metadata = given === undefined || isPlainObject(given) ? { ...currentTraceFields(), ...given } : given;
        const message = await encoded(createMessage({ ...publishOptions, metadata, type, data }));
        span?.setAttributes(messageAttributes(message));
        await transport.publish(topic, [message]);
        return message;
      });
    },

    subscribe<Tx = undefined>(
      group: string,
      types: readonly string[],
      handler: EventHandler<Tx>,
      consumerOptions: SubscriberOptions<Tx> = {},
    ) {
      const issues: ValidationIssue[] = [];
      if (typeof group !== 'string' || group.length === 0) {
        issues.push({ path: 'group', message: 'must be a non-empty string' });
      } else if (consumers.has(group)) {
        issues.push({ path: 'group', message: `"${group}" is already subscribed to this bus` });
      }
      if (!Array.isArray(types) || types.length === 0 || types.some((t) => typeof t !== 'string' || t.length === 0)) {
        issues.push({ path: 'types', message: 'must be a non-empty list of event types' });
      }
      if (typeof handler !== 'function') issues.push({ path: 'handler', message: 'must be a function' });
      const { schemas = busSchemas, ...options } = consumerOptions ?? {};
      // The bus sets these itself: given here they would be overwritten without a word.
      for (const fixed of ['name', 'topic', 'transport', 'handler'] as const) {
        if (Object.hasOwn(options, fixed)) {
          issues.push({
            path: `options.${fixed}`,
            message: 'is set by the bus (the group, its topic, its transport, the handler argument)',
          });
        }
      }
      const badSchemas =
        schemas === undefined ? undefined : (schemasOption as (value: unknown) => string | undefined)(schemas);
      if (badSchemas) issues.push({ path: 'options.schemas', message: badSchemas });
      if (issues.length > 0) throw new ValidationError(issues);

      const wanted = new Set(types);
      // Decoded after the type filter: a type not subscribed to is never decoded, so one the registry cannot read
      // (unknown, newer, invalid) is acknowledged like any other, not retried and dead-lettered.
      const decoded = schemas ? decodingHandler(schemas, handler) : handler;
      const consumer = createConsumer<Tx>({
        ...options,
        name: group,
        topic,
        transport,
        // Other types are settled without a call: returning acknowledges them.
        handler: (message, tx) => (wanted.has(message.type) ? decoded(message, tx) : undefined),
      });
      consumers.set(group, consumer);
      // A failed start is reported through the subscriber's onError and its stats.
      if (running) consumer.start().catch(() => undefined);
      return consumer;
    },

    async start() {
      running = true;
      const outcomes = await Promise.allSettled([...consumers.values()].map((c) => c.start()));
      const failed = outcomes.find((outcome) => outcome.status === 'rejected');
      if (!failed) return;
      // All or nothing: the subscriptions that started stop again, so a retry of start() starts them all.
      running = false;
      await Promise.all([...consumers.values()].map((c) => c.stop()));
      throw failed.reason;
    },

    async stop() {
      running = false;
      await Promise.all([...consumers.values()].map((c) => c.stop()));
    },
  };
}
