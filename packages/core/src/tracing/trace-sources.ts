import type { DeadLetter } from '../messaging/consumer-ports.ts';
import type { Message } from '../messaging/message.ts';
import type { EventMetadata } from '../store/types.ts';

/** An event as a trace needs it (its data is not read). */
export interface TracedEvent {
  id: string;
  type: string;
  streamId: string;
  streamVersion: number;
  position: number;
  recordedAt: Date;
  metadata: EventMetadata;
}

export interface TracedOutboxEntry {
  topic: string;
  message: Message;
  enqueuedAt: Date;
}

/** One row of a transport's queue: a message waiting for one group. */
export interface TracedQueuedMessage {
  topic: string;
  group: string;
  message: Message;
  visibleAt: Date;
  deliveryCount: number;
  /** Handed out under a lease (in delivery while `visibleAt` is ahead). */
  leased: boolean;
}

/** An inbox mark. */
export interface TracedHandling {
  group: string;
  messageId: string;
  at: Date;
}

/**
 * How an adapter reads what its tables hold about one correlation id. Each
 * method reads through an index (the correlation id, or the message id for
 * the inbox), earliest first, at most `limit` rows; a table the database does
 * not have reads as empty.
 */
export interface TraceReader {
  events(correlationId: string, limit: number): Promise<TracedEvent[]>;
  outbox(correlationId: string, limit: number): Promise<TracedOutboxEntry[]>;
  queued(correlationId: string, limit: number): Promise<TracedQueuedMessage[]>;
  deadLetters(correlationId: string, limit: number): Promise<DeadLetter[]>;
  /** Inbox marks of these message ids (the inbox keeps no correlation id). */
  handled(messageIds: readonly string[], limit: number): Promise<TracedHandling[]>;
}

/** What the reader found, for `buildTraceTree`. */
export interface TraceSources {
  events: readonly TracedEvent[];
  outbox: readonly TracedOutboxEntry[];
  queued: readonly TracedQueuedMessage[];
  deadLetters: readonly DeadLetter[];
  handled: readonly TracedHandling[];
}
