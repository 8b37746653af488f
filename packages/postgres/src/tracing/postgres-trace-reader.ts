import { type TraceReader, type TraceRows, traceRowDecoders } from '@factline/core/adapter';
import type pg from 'pg';
import { toStorageError } from '../pg-errors.ts';

/** Epoch milliseconds of a timestamptz column, whatever type parsers the pool has. */
const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`;

/**
 * The statements `traceOperation` runs in schema `s` (quoted), each through
 * an expression index on the correlation id (written exactly as the index
 * is) or, for the inbox, the index on the message id. Exported for the test
 * that reads their plans.
 */
export const traceStatements = (s: string) => ({
  events: `SELECT event_id, stream_id, stream_version::float8 AS stream_version, position::float8 AS position, type,
      metadata::text AS metadata, ${ms('recorded_at')} AS recorded_at
    FROM ${s}.events WHERE (metadata->>'correlationId') = $1 ORDER BY position LIMIT $2`,
  outbox: `SELECT topic, message::text AS message, ${ms('created_at')} AS created_at
    FROM ${s}.outbox WHERE (message->'metadata'->>'correlationId') = $1 ORDER BY seq LIMIT $2`,
  queued: `SELECT topic, group_name, message::text AS message, ${ms('visible_at')} AS visible_at, delivery_count,
      lease IS NOT NULL AS leased
    FROM ${s}.transport_messages WHERE (message->'metadata'->>'correlationId') = $1 ORDER BY seq LIMIT $2`,
  deadLetters: `SELECT record::text AS record FROM ${s}.dead_letters
    WHERE (record->'message'->'metadata'->>'correlationId') = $1 ORDER BY dead_lettered_at, id LIMIT $2`,
  handled: `SELECT consumer, message_id, ${ms('at')} AS at FROM ${s}.inbox
    WHERE message_id = ANY($1::text[]) ORDER BY at LIMIT $2`,
});

/** The table each source reads. */
const tables = {
  events: 'events',
  outbox: 'outbox',
  queued: 'transport_messages',
  deadLetters: 'dead_letters',
  handled: 'inbox',
};
type Source = keyof typeof tables;

/**
 * Reads what one correlation id left in a schema; a table the schema does not
 * have (no outbox, another transport) reads as empty.
 *
 * @example
 * const tracer = createOperationTracer(postgresTraceReader(pool, '"factline"'));
 */
export function postgresTraceReader(pool: pg.Pool, quoted: string): TraceReader {
  const sql = traceStatements(quoted);
  // Looked up until found: a transport or an outbox may create its table after the tracer opened.
  const found = new Set<Source>();
  const has = async (source: Source) => {
    if (found.has(source)) return true;
    const { rows } = await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
      `${quoted}.${tables[source]}`,
    ]);
    if (rows[0]?.present) found.add(source);
    return found.has(source);
  };
  const read = async <R extends pg.QueryResultRow>(source: Source, values: unknown[]): Promise<R[]> => {
    try {
      if (!(await has(source))) return [];
      return (await pool.query<R>({ text: sql[source], values })).rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };

  return {
    events: async (correlationId, limit) =>
      (await read<TraceRows['events']>('events', [correlationId, limit])).map(traceRowDecoders.events),
    outbox: async (correlationId, limit) =>
      (await read<TraceRows['outbox']>('outbox', [correlationId, limit])).map(traceRowDecoders.outbox),
    queued: async (correlationId, limit) =>
      (await read<TraceRows['queued']>('queued', [correlationId, limit])).map(traceRowDecoders.queued),
    deadLetters: async (correlationId, limit) =>
      (await read<TraceRows['deadLetters']>('deadLetters', [correlationId, limit])).map(traceRowDecoders.deadLetters),
    handled: async (messageIds, limit) =>
      (await read<TraceRows['handled']>('handled', [[...messageIds], limit])).map(traceRowDecoders.handled),
  };
}
