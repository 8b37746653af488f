import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterStore,
  TransportError,
  ValidationError,
} from '@factline/core';
import {
  deadLetterConditions,
  deadLetterFromJson,
  deadLetterMatches,
  deadLetterRedrivesJson,
  deadLetterRow,
  deadLetterToJson,
  isStorableText,
  refreshedDeadLetter,
} from '@factline/core/adapter';
import type pg from 'pg';
import { checkPostgresDeadLetterStoreOptions } from '../options.ts';
import { openConsumerTables, type PostgresConsumerStoreOptions } from './postgres-consumer-tables.ts';

/** A unique violation (23505) as the consumer tables' query gives it (a `StorageError` with the driver's error as cause). */
const isUniqueViolation = (error: unknown): boolean =>
  (error as { cause?: { code?: unknown } })?.cause?.code === '23505' || (error as { code?: unknown })?.code === '23505';

/**
 * Text as the text columns keep it. PostgreSQL's text holds no NUL and no lone surrogate, which a message
 * written into a broker by another program can hold: such text is kept as its JSON string literal
 * (`"up\u0000-1"`, quotes included), which no id or type equals unless written so. The record's JSON keeps
 * the message exact (`deadLetterToJson`).
 */
const column = (text: string): string => (isStorableText(text) ? text : JSON.stringify(text));
const columnOrNull = (value: string | null) => (value === null ? null : column(value));

export interface PostgresDeadLetterStore extends DeadLetterStore {
  readonly pool: pg.Pool;
  /** Ends the pool if the store opened it. */
  close(): Promise<void>;
}

/**
 * Dead letters in PostgreSQL (migration component `consumer`), kept after a
 * redrive or a discard with their history. A new failure of a message whose
 * record is live refreshes that record; an update applies only to a record
 * still dead with the failure it was read with. A message holding a NUL or a
 * lone surrogate (written into a broker by another program) is kept as it
 * is and read back unchanged (`deadLetterToJson`): the columns keep such an
 * id or type as its JSON string literal, the record's `message` shows such
 * text with U+2400 (␀) and U+FFFD (its correlation id indexed so), and a
 * filter matches the record's own text.
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
    // No record is kept under an id PostgreSQL's text cannot hold (add refuses it).
    if (!isStorableText(id)) return undefined;
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
      if (!isStorableText(record.id)) {
        throw new ValidationError({
          path: 'record.id',
          message: `${JSON.stringify(record.id)} holds a NUL or a lone surrogate, which PostgreSQL's text cannot hold (a dead letter's id is the consumer's UUID)`,
        });
      }
      // The live record refreshed while it is the one read (compared by its text), else the record added; a
      // conflict or a change meanwhile (another failure of the message, a redrive) looks again.
      for (let round = 0; round < 5; round++) {
        const { rows } = await tables.query<{ record: string }>(
          'dead-letter-live',
          `SELECT record::text AS record FROM ${s}.dead_letters
            WHERE consumer = $1 AND topic = $2 AND message_id = $3 AND state = 'dead'`,
          [column(record.consumer), column(record.topic), column(record.message.id)],
        );
        const found = rows[0];
        if (found) {
          const live = deadLetterFromJson(found.record);
          if (
            live.message.id !== record.message.id ||
            live.consumer !== record.consumer ||
            live.topic !== record.topic
          ) {
            // An id written as the JSON literal of another one holding a NUL shares its slot in the live index:
            // that message's record is neither replaced nor merged; this one is kept once that one is settled.
            throw new TransportError(
              `the dead letter of message ${JSON.stringify(record.message.id)} for consumer ${JSON.stringify(record.consumer)} cannot be kept while record '${live.id}' of a message whose id the table keeps alike is dead: redrive or discard that one`,
              { retryable: true },
            );
          }
          const row = deadLetterRow(refreshedDeadLetter(live, record));
          const refreshed = await tables.query(
            'dead-letter-refresh',
            `UPDATE ${s}.dead_letters
                SET message_type = $2, error_type = $3, error_message = $4, dead_lettered_at = $5, record = $6::json
              WHERE id = $1 AND state = 'dead' AND record::text = $7`,
            [
              row.id,
              column(row.messageType),
              row.errorType,
              row.errorMessage,
              row.deadLetteredAt,
              row.record,
              found.record,
            ],
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
            column(row.consumer),
            column(row.topic),
            column(row.messageId),
            column(row.messageType),
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
      const given = [c.consumer, c.topic, c.type, c.error];
      const values = given.map(columnOrNull);
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
        [c.state, ...values, c.since, c.until],
      );
      // A value holding a NUL or a lone surrogate was looked up as the columns show it: the records' own text decides.
      const shownAlike = values.some((value, i) => value !== given[i]);
      return shownAlike ? revive(rows).filter((record) => deadLetterMatches(record, filter)) : revive(rows);
    },
    get,
    async update(record, read) {
      if (!isStorableText(record.id)) return false;
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
