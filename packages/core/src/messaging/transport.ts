import type { DeadLetterStore } from './consumer-ports.ts';
import type { Message } from './message.ts';

/**
 * What a transport does natively. The consumer runtime fills the gaps the
 * same way on every transport (delays by holding the message, dead-lettering
 * to the dead-letter store, per-key order by its key lanes).
 */
export interface TransportCapabilities {
  /** Holds a message until its `deliverAt`. */
  delayedDelivery: boolean;
  /** Has its own dead-letter queue. */
  deadLettering: boolean;
  /** Delivers the messages of one key in publish order. */
  perKeyOrder: boolean;
  /** Several consumers of one group share its messages, each message going to one of them. */
  competingConsumers: boolean;
  /**
   * Messages survive a restart of the process (they are in a database or a
   * broker). A consumer on a durable transport keeps its dead letters
   * durably too: in the transport's `defaultDeadLetterStore()` unless given
   * a store.
   */
  durable: boolean;
  /**
   * A message released with a delay (`release(ms)`) holds its key's later
   * messages back from every consumer of the group until it is handed out
   * again: the transport itself keeps it at the head of its key, not only the
   * process that released it. Without it, a consumer that stops during a
   * retry's delay gives the message back due at once, so that its key's later
   * messages, given back with it, never run before it elsewhere. Default false.
   */
  delayedReleaseHoldsKey?: boolean;
}

/** One message handed to a consumer group, until it is settled. */
export interface Delivery {
  message: Message;
  /** How many times the transport has handed this message to the group (1 = first). */
  deliveryCount: number;
  /** Done: the group never sees it again. */
  ack(): Promise<void>;
  /** Give it back, to be delivered again after `delayMs` (0 = now), to this or another consumer. */
  release(delayMs: number): Promise<void>;
  /** Keep it invisible to other consumers for `ms` more (long handlers, held retries). */
  extend(ms: number): Promise<void>;
}

export interface SubscribeOptions {
  /** How long a delivery stays invisible to others before it comes back unless settled or extended, ms: a whole number from 1 to 2147483647. */
  visibilityTimeoutMs?: number;
}

/** Options of `Transport.publish`. */
export interface TransportPublishOptions {
  /**
   * Reject with `NoSubscriptionError`, writing nothing, when no consumer group
   * has declared a subscription to the topic (checked atomically with the
   * write). Relays set it, so that rows are held instead of dropped. Default
   * false: a publish to a topic nobody subscribed to is a no-op (a publisher
   * need not know its subscribers).
   */
  requireSubscription?: boolean;
}

export interface Subscription {
  /**
   * Up to `max` deliveries, waiting up to `waitMs` for the first one.
   * Resolves early (possibly empty) when `signal` aborts.
   */
  receive(max: number, waitMs: number, signal: AbortSignal): Promise<Delivery[]>;
  close(): Promise<void>;
}

/**
 * The transport port. Every consumer group of a topic receives every message
 * published to it after the group's subscription was declared (fan-out),
 * whether or not one of its consumers runs; within a group, deliveries are
 * shared among the group's consumers (competing consumers) where the
 * transport can. A publish to a topic with no declared subscription is
 * dropped, unless it asks for `requireSubscription`.
 */
export interface Transport {
  readonly capabilities: TransportCapabilities;
  /**
   * What spans name as `messaging.system`: `'in-memory'`, `'sqlite'`,
   * `'postgresql'`, `'rabbitmq'`. Default (absent): `'factline'`.
   */
  readonly system?: string;
  /**
   * Publishes in order; resolves once the transport has the messages (durably,
   * for durable transports). With `requireSubscription`, rejects with
   * `NoSubscriptionError` and writes nothing while the topic has no declared
   * subscription.
   */
  publish(topic: string, messages: readonly Message[], options?: TransportPublishOptions): Promise<void>;
  /**
   * Declares that `group` subscribes to `topic`: from the moment it resolves,
   * the group gets every message published to the topic, whether or not a
   * consumer of the group runs (durably, on durable transports). Idempotent:
   * a deploy script or a service's start-up may call it every time.
   */
  declareSubscription(topic: string, group: string): Promise<void>;
  /** Receives a group's messages; declares the group's subscription too (`declareSubscription`). */
  subscribe(topic: string, group: string, options?: SubscribeOptions): Subscription;
  /**
   * Delivers messages again to one group only (a dead-letter redrive), not to
   * the topic's other groups. Declares the group's subscription too
   * (`declareSubscription`), so the messages are kept for a group none of
   * whose consumers has run yet (a redrive before `start()`). Resolves once
   * the transport has every message for the group (durably, for durable
   * transports); anything less rejects, and the caller must not count them
   * delivered.
   */
  redeliver(topic: string, group: string, messages: readonly Message[]): Promise<void>;
  /**
   * The dead-letter store a consumer uses when given none: on a durable
   * transport, one that survives restarts (the SQL transports: the SQL
   * dead-letter store on the transport's own database). The same store on
   * every call.
   */
  defaultDeadLetterStore?(): Promise<DeadLetterStore>;
  /**
   * What waits for `group` on `topic`: messages not yet acknowledged (due,
   * delayed or in delivery) and the oldest one's `createdAt` (ms since the
   * epoch, `undefined` when none or, with `ageUnknown`, when the transport
   * cannot tell). Read at metric collection only; optional:
   * a transport that cannot tell cheaply leaves it out (no consumer lag).
   */
  backlog?(topic: string, group: string): Promise<TransportBacklog>;
  close(): Promise<void>;
}

/** A consumer group's queue right now, for the consumer-lag gauges. */
export interface TransportBacklog {
  messages: number;
  oldestAt: number | undefined;
  /**
   * True when messages wait but the transport cannot tell the oldest one's
   * age (RabbitMQ: AMQP cannot look into a queue without disturbing it):
   * `oldestAt` is then `undefined` and the age gauge leaves its point out
   * rather than report 0. Absent or false: `oldestAt` is the oldest's time.
   */
  ageUnknown?: boolean;
  /**
   * The oldest message's age, ms, where the transport can tell it without the
   * reading process's clock (PostgreSQL: its age at publish by the
   * publisher's clock, plus its time in the table by the database's): the
   * age gauge is then this, not the reader's clock less `oldestAt`. Absent:
   * `oldestAt` and the reader's clock.
   */
  oldestAgeMs?: number;
}
