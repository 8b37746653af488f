import type { DeadLetter, DeadLetterFilter, DeadLetterStore } from '@factline/core';
import { deadLetterConditions, deadLetterFromJson, deadLetterRow, deadLetterToJson } from '@factline/core/adapter';
import type pg from 'pg';
import { checkPostgresDeadLetterStoreOptions } from '../options.ts';
import { openConsumerTables, type PostgresConsumerStoreOptions } from './postgres-consumer-tables.ts';

export interface PostgresDeadLetterStore extends DeadLetterStore {
  readonly pool: pg.Pool;
  /** Ends the pool if the store opened it. */
  close(): Promise<void>;
}

/**
 * Dead letters in PostgreSQL (migration component `consumer`), kept after a
 * redrive or a discard with their history. Adding a second live dead letter
 * for the same consumer and message is a no-op.
 *
 * @example
 * const deadLetters = await getPostgresDeadLetterStore({ pool });
 * const failed = await deadLetters.list({ consumer: 'billing' });
 */
export async function getPostgresDeadLetterStore(
  options: PostgresConsumerStoreOptions,
): Promise<PostgresDeadLetterStore> {
  checkPostgresDeadLetterStoreOptions(options);
  const tables = await openConsumerTables(options, 'dead-letter store');
  const { pool, s } = tables;
  const revive = (rows: { record: string }[]) => rows.map((row) => deadLetterFromJson(row.record));
  return {
    pool,
    async add(record: DeadLetter) {
      const row = deadLetterRow(record);
      await tables.query(
        'dead-letter-add',
        `INSERT INTO ${s}.dead_letters
           (id, consumer, topic, message_id, message_type, error_type, error_message, dead_lettered_at, state, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json)
         ON CONFLICT DO NOTHING`,
        [
          row.id,
          row.consumer,
          row.topic,
          row.messageId,
          row.messageType,
          row.errorType,
          row.errorMessage,
          row.deadLetteredAt,
          row.state,
          row.record,
        ],
      );
    },
    async list(filter: DeadLetterFilter = {}) {
      const c = deadLetterConditions(filter);
      // One statement for every filter: a condition whose parameter is null is true.
      const { rows } = await tables.query<{ record: string }>(
        'dead-letter-list',
        `SELECT record::text AS record FROM ${s}.dead_letters
          WHERE state = $1
            AND ($2::text IS NULL OR consumer = $2)
            AND ($3::text IS NULL OR topic = $3)
            AND ($4::text IS NULL OR message_type = $4)
            AND ($5::text IS NULL OR error_type = $5 OR strpos(error_message, $5) > 0)
            AND ($6::timestamptz IS NULL OR dead_lettered_at >= $6)
            AND ($7::timestamptz IS NULL OR dead_lettered_at <= $7)
          ORDER BY dead_lettered_at, id`,
        [c.state, c.consumer, c.topic, c.type, c.error, c.since, c.until],
      );
      return revive(rows);
    },
    async get(id) {
      const { rows } = await tables.query<{ record: string }>(
        'dead-letter-get',
        `SELECT record::text AS record FROM ${s}.dead_letters WHERE id = $1`,
        [id],
      );
      return revive(rows)[0];
    },
    async update(record) {
      await tables.query(
        'dead-letter-update',
        `UPDATE ${s}.dead_letters SET state = $1, record = $2::json WHERE id = $3`,
        [record.state, deadLetterToJson(record), record.id],
      );
    },
    close: tables.close,
  };
}
