import type { DeadLetter, EventMetadata } from '@factline/core';
import {
  deadLetterFromJson,
  messageFromJson,
  type TracedEvent,
  type TracedHandling,
  type TracedOutboxEntry,
  type TracedQueuedMessage,
  type TraceReader,
} from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';

/**
 * The statements `traceOperation` runs, each through an index on the
 * correlation id (an expression index on the JSON, written exactly as the
 * index is) or, for the inbox, on the message id. Exported for the test that
 * reads their query plans.
 */
export const traceStatements = {
  events: `SELECT event_id, stream_id, stream_version, position, type, metadata, recorded_at FROM factline_events
    WHERE json_extract(metadata, '$.correlationId') = ? ORDER BY position LIMIT ?`,
  outbox: `SELECT topic, message, created_at FROM factline_outbox
    WHERE json_extract(message, '$.metadata.correlationId') = ? ORDER BY seq LIMIT ?`,
  queued: `SELECT topic, group_name, message, visible_at, delivery_count, lease IS NOT NULL AS leased
    FROM factline_transport_messages
    WHERE json_extract(message, '$.metadata.correlationId') = ? ORDER BY seq LIMIT ?`,
  deadLetters: `SELECT record FROM factline_dead_letters
    WHERE json_extract(record, '$.message.metadata.correlationId') = ? ORDER BY dead_lettered_at, id LIMIT ?`,
  /** `(?)` stands for the list of message ids, one placeholder each. */
  handled: 'SELECT consumer, message_id, at FROM factline_inbox WHERE message_id IN (?) ORDER BY at LIMIT ?',
} as const;

/** Which of the tables the trace reads exist in the file. */
export const traceTables = {
  events: 'factline_events',
  outbox: 'factline_outbox',
  queued: 'factline_transport_messages',
  deadLetters: 'factline_dead_letters',
  handled: 'factline_inbox',
} as const;

// SQLite allows 32,766 bound values; an id list is read in slices well below that.
const IDS_PER_STATEMENT = 500;

interface EventRow {
  event_id: string;
  stream_id: string;
  stream_version: number;
  position: number;
  type: string;
  metadata: string;
  recorded_at: number;
}

/**
 * Reads what one correlation id left in the SQLite file; a table the file does
 * not have (no outbox, another transport) reads as empty.
 *
 * @example
 * const tracer = createOperationTracer(sqliteTraceReader(store.database));
 */
export function sqliteTraceReader(db: Database): TraceReader {
  const exists = db.prepare<[string]>("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  const has = (source: keyof typeof traceTables) => exists.get(traceTables[source]) !== undefined;
  // Prepared once its table exists: a transport or an outbox may open the file after the tracer.
  const statements = new Map<string, Statement>();
  const prepared = (source: Exclude<keyof typeof traceStatements, 'handled'>) => {
    let statement = statements.get(source);
    if (!statement && has(source)) {
      statement = db.prepare(traceStatements[source]);
      statements.set(source, statement);
    }
    return statement;
  };

  return {
    async events(correlationId, limit) {
      return ((prepared('events')?.all(correlationId, limit) ?? []) as EventRow[]).map(
        (row): TracedEvent => ({
          id: row.event_id,
          type: row.type,
          streamId: row.stream_id,
          streamVersion: row.stream_version,
          position: row.position,
          recordedAt: new Date(row.recorded_at),
          metadata: JSON.parse(row.metadata) as EventMetadata,
        }),
      );
    },
    async outbox(correlationId, limit) {
      const rows = (prepared('outbox')?.all(correlationId, limit) ?? []) as {
        topic: string;
        message: string;
        created_at: number;
      }[];
      return rows.map(
        (row): TracedOutboxEntry => ({
          topic: row.topic,
          message: messageFromJson(row.message),
          enqueuedAt: new Date(row.created_at),
        }),
      );
    },
    async queued(correlationId, limit) {
      const rows = (prepared('queued')?.all(correlationId, limit) ?? []) as {
        topic: string;
        group_name: string;
        message: string;
        visible_at: number;
        delivery_count: number;
        leased: number;
      }[];
      return rows.map(
        (row): TracedQueuedMessage => ({
          topic: row.topic,
          group: row.group_name,
          message: messageFromJson(row.message),
          visibleAt: new Date(row.visible_at),
          deliveryCount: row.delivery_count,
          leased: row.leased === 1,
        }),
      );
    },
    async deadLetters(correlationId, limit) {
      const rows = (prepared('deadLetters')?.all(correlationId, limit) ?? []) as { record: string }[];
      return rows.map((row): DeadLetter => deadLetterFromJson(row.record));
    },
    async handled(messageIds, limit) {
      if (!has('handled')) return [];
      const marks: TracedHandling[] = [];
      for (let i = 0; i < messageIds.length && marks.length < limit; i += IDS_PER_STATEMENT) {
        const slice = messageIds.slice(i, i + IDS_PER_STATEMENT);
        const sql = traceStatements.handled.replace('IN (?)', `IN (${slice.map(() => '?').join(', ')})`);
        const rows = db.prepare(sql).all(...slice, limit - marks.length) as {
          consumer: string;
          message_id: string;
          at: number;
        }[];
        for (const row of rows) marks.push({ group: row.consumer, messageId: row.message_id, at: new Date(row.at) });
      }
      return marks;
    },
  };
}
