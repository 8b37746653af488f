import { type TracedHandling, type TraceReader, type TraceRows, traceRowDecoders } from '@factline/core/adapter';
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

  const rows = <S extends keyof typeof traceTables & keyof TraceRows>(
    source: Exclude<S, 'handled'>,
    id: string,
    limit: number,
  ) => (prepared(source)?.all(id, limit) ?? []) as TraceRows[S][];

  return {
    async events(correlationId, limit) {
      return rows<'events'>('events', correlationId, limit).map(traceRowDecoders.events);
    },
    async outbox(correlationId, limit) {
      return rows<'outbox'>('outbox', correlationId, limit).map(traceRowDecoders.outbox);
    },
    async queued(correlationId, limit) {
      return rows<'queued'>('queued', correlationId, limit).map(traceRowDecoders.queued);
    },
    async deadLetters(correlationId, limit) {
      return rows<'deadLetters'>('deadLetters', correlationId, limit).map(traceRowDecoders.deadLetters);
    },
    async handled(messageIds, limit) {
      if (!has('handled')) return [];
      const marks: TracedHandling[] = [];
      for (let i = 0; i < messageIds.length && marks.length < limit; i += IDS_PER_STATEMENT) {
        const slice = messageIds.slice(i, i + IDS_PER_STATEMENT);
        const sql = traceStatements.handled.replace('IN (?)', `IN (${slice.map(() => '?').join(', ')})`);
        const found = db.prepare(sql).all(...slice, limit - marks.length) as TraceRows['handled'][];
        for (const row of found) marks.push(traceRowDecoders.handled(row));
      }
      return marks;
    },
  };
}
