import { type DeadLetter, type DeadLetterFilter, type DeadLetterStore, TransportError } from '@factline/core';
import {
  deadLetterConditions,
  deadLetterFromJson,
  deadLetterRedrivesJson,
  deadLetterRow,
  deadLetterToJson,
  refreshedDeadLetter,
} from '@factline/core/adapter';
import type pg from 'pg';
import { checkPostgresDeadLetterStoreOptions } from '../options.ts';
import { openConsumerTables, type PostgresConsumerStoreOptions } from './postgres-consumer-tables.ts';

/** A unique violation (23505) as the consumer tables' query gives it (a `StorageError` with the driver's error as cause). */
const isUniqueViolation = (error: unknown): boolean =>
  (error as { cause?: { code?: unknown } })?.cause?.code === '23505' || (error as { code?: unknown })?.code === '23505';

export interface PostgresDeadLetterStore extends DeadLetterStore {
  readonly pool: pg.Pool;
  /** Ends the pool if the store opened it. */
  close(): Promise<void>;
}

/**
 * Dead letters in PostgreSQL (migration component `consumer`), kept after a
 * redrive or a discard with their history. A new failure of a message whose
 * record is live refreshes that record; an update applies only to a record
 * still dead with the failure it was read with.
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
  const get = async (id: string) => {
    const { rows } = await tables.query<{ record: string }>(
      'dead-letter-get',
      `SELECT record::text AS record FROM ${s}.dead_letters WHERE id = $1`,
      [id],
    );
    return revive(rows)[0];
  };
  return {
    pool,
    async add(record: DeadLetter) {
      // The live record refreshed while it is the one read (compared by its text), else the record added; a
      // conflict or a change meanwhile (another failure of the message, a redrive) looks again.
      for (let round = 0; round < 5; round++) {
        const { rows } = await tables.query<{ record: string }>(
          'dead-letter-live',
          `SELECT record::text AS record FROM ${s}.dead_letters
            WHERE consumer = $1 AND topic = $2 AND message_id = $3 AND state = 'dead'`,
          [record.consumer, record.topic, record.message.id],
        );
        const found = rows[0];
        if (found) {
          const row = deadLetterRow(refreshedDeadLetter(deadLetterFromJson(found.record), record));
          const refreshed = await tables.query(
            'dead-letter-refresh',
            `UPDATE ${s}.dead_letters
                SET message_type = $2, error_type = $3, error_message = $4, dead_lettered_at = $5, record = $6::json
              WHERE id = $1 AND state = 'dead' AND record::text = $7`,
            [row.id, row.messageType, row.errorType, row.errorMessage, row.deadLetteredAt, row.record, found.record],
          );
          if ((refreshed.rowCount ?? 0) > 0) return;
          continue;
        }
        const row = deadLetterRow(record);
        const added = await tables.query(
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
        if ((added.rowCount ?? 0) > 0) return;
        // Kept already under its id (the same record added again): nothing to do.
        if (await get(record.id)) return;
      }
      throw new TransportError(
        `the dead letter of message ${record.message.id} for consumer '${record.consumer}' kept changing while it was added`,
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
    get,
    async update(record, read) {
      try {
        // While the stored record is as read (its state, time and, given, redrives); a record written dead only
        // while no other record of its message is live (the unique index dead_letters_live otherwise).
        const { rowCount } = await tables.query(
          'dead-letter-update',
          `UPDATE ${s}.dead_letters d SET state = $1, record = $2::json
            WHERE d.id = $3 AND d.state = $5 AND d.dead_lettered_at = $4
              AND ($6::jsonb IS NULL OR d.record::jsonb -> 'redrives' = $6::jsonb)
              AND ($1 <> 'dead' OR NOT EXISTS (
                SELECT 1 FROM ${s}.dead_letters o
                 WHERE o.consumer = d.consumer AND o.topic = d.topic AND o.message_id = d.message_id
                   AND o.state = 'dead' AND o.id <> d.id))`,
          [
            record.state,
            deadLetterToJson(record),
            record.id,
            (read ?? record).deadLetteredAt,
            read?.state ?? 'dead',
            read ? deadLetterRedrivesJson(read) : null,
          ],
        );
        return (rowCount ?? 0) > 0;
      } catch (error) {
        // Another record of the message made live by a concurrent add: this one stays as it is.
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    close: tables.close,
  };
}
