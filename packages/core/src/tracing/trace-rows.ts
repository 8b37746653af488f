import type { DeadLetter } from '../messaging/consumer-ports.ts';
import { deadLetterFromJson } from '../messaging/dead-letter-json.ts';
import { messageFromJson } from '../messaging/message.ts';
import type { EventMetadata } from '../store/types.ts';
import type { TracedEvent, TracedHandling, TracedOutboxEntry, TracedQueuedMessage } from './trace-sources.ts';

/**
 * The rows a SQL adapter's trace statements select, with the column names
 * both adapters use; times are epoch milliseconds, JSON columns text. The
 * adapters keep their SQL; the decoding is here, once.
 */
export interface TraceRows {
  events: {
    event_id: string;
    stream_id: string;
    stream_version: number;
    position: number;
    type: string;
    metadata: string;
    recorded_at: number;
  };
  outbox: { topic: string; message: string; created_at: number };
  /** `leased`: SQLite gives 0/1, PostgreSQL a boolean. */
  queued: {
    topic: string;
    group_name: string;
    message: string;
    visible_at: number;
    delivery_count: number;
    leased: number | boolean;
  };
  deadLetters: { record: string };
  handled: { consumer: string; message_id: string; at: number };
}

/**
 * Decodes each kind of trace row into what `TraceReader` returns.
 *
 * @example
 * return rows.map(traceRowDecoders.events);
 */
export const traceRowDecoders = {
  events: (row: TraceRows['events']): TracedEvent => ({
    id: row.event_id,
    type: row.type,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    position: row.position,
    recordedAt: new Date(row.recorded_at),
    metadata: JSON.parse(row.metadata) as EventMetadata,
  }),
  outbox: (row: TraceRows['outbox']): TracedOutboxEntry => ({
    topic: row.topic,
    message: messageFromJson(row.message),
    enqueuedAt: new Date(row.created_at),
  }),
  queued: (row: TraceRows['queued']): TracedQueuedMessage => ({
    topic: row.topic,
    group: row.group_name,
    message: messageFromJson(row.message),
    visibleAt: new Date(row.visible_at),
    deliveryCount: row.delivery_count,
    leased: row.leased === true || row.leased === 1,
  }),
  deadLetters: (row: TraceRows['deadLetters']): DeadLetter => deadLetterFromJson(row.record),
  handled: (row: TraceRows['handled']): TracedHandling => ({
    group: row.consumer,
    messageId: row.message_id,
    at: new Date(row.at),
  }),
};
