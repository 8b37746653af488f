import { type DeadLetter, type DeadLetterFilter, storableDeadLetter } from './consumer-ports.ts';
import { deadLetterToJson } from './dead-letter-json.ts';

/**
 * A dead letter as an SQL store keeps it: the whole record as JSON, plus the
 * columns filters use; its failure's text as `storableDeadLetter` has it.
 */
export interface DeadLetterRow {
  id: string;
  consumer: string;
  topic: string;
  messageId: string;
  messageType: string;
  errorType: string;
  errorMessage: string;
  deadLetteredAt: Date;
  state: DeadLetter['state'];
  /** `deadLetterToJson(record)`. */
  record: string;
}

/**
 * @example
 * const row = deadLetterRow(record);
 * insert.run({ ...row, deadLetteredAt: row.deadLetteredAt.getTime() });
 */
export function deadLetterRow(given: DeadLetter): DeadLetterRow {
  const record = storableDeadLetter(given);
  return {
    id: record.id,
    consumer: record.consumer,
    topic: record.topic,
    messageId: record.message.id,
    messageType: record.message.type,
    errorType: record.error.type,
    errorMessage: record.error.message,
    deadLetteredAt: record.deadLetteredAt,
    state: record.state,
    record: deadLetterToJson(record),
  };
}

/**
 * A `list` filter as the conditions of an SQL store, every one present: `null`
 * where the filter leaves it open, the state `'dead'` unless given. The
 * column each applies to: `state`, `consumer`, `topic`, `message_type`;
 * `error` matches `error_type` exactly or is a substring of `error_message`;
 * `since` and `until` bound `dead_lettered_at`, both inclusive. Rows come in
 * `dead_lettered_at`, then `id` order.
 */
export interface DeadLetterConditions {
  state: DeadLetter['state'];
  consumer: string | null;
  topic: string | null;
  type: string | null;
  error: string | null;
  since: Date | null;
  until: Date | null;
}

/**
 * @example
 * const c = deadLetterConditions(filter);
 * pool.query('… WHERE state = $1 AND ($2::text IS NULL OR consumer = $2) …', [c.state, c.consumer]);
 */
export function deadLetterConditions(filter: DeadLetterFilter = {}): DeadLetterConditions {
  return {
    state: filter.state ?? 'dead',
    consumer: filter.consumer ?? null,
    topic: filter.topic ?? null,
    type: filter.type ?? null,
    error: filter.error ?? null,
    since: filter.since ?? null,
    until: filter.until ?? null,
  };
}
