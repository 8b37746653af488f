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
  /** How long a delivery stays invisible to others before it comes back unless settled or extended. */
  visibilityTimeoutMs?: number;
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
 * published to it (fan-out); within a group, deliveries are shared among the
 * group's consumers (competing consumers) where the transport can.
 */
export interface Transport {
  readonly capabilities: TransportCapabilities;
  /** Publishes in order; resolves once the transport has the messages (durably, for durable transports). */
  publish(topic: string, messages: readonly Message[]): Promise<void>;
  subscribe(topic: string, group: string, options?: SubscribeOptions): Subscription;
  /** Delivers messages again to one group only (a dead-letter redrive), not to the topic's other groups. */
  redeliver(topic: string, group: string, messages: readonly Message[]): Promise<void>;
  /**
   * The dead-letter store a consumer uses when given none: on a durable
   * transport, one that survives restarts (the SQL transports: the SQL
   * dead-letter store on the transport's own database). The same store on
   * every call.
   */
  defaultDeadLetterStore?(): Promise<DeadLetterStore>;
  close(): Promise<void>;
}
