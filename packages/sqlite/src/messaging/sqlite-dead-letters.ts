import type { DeadLetter, DeadLetterFilter, DeadLetterStore } from '@factline/core';
import {
  deadLetterConditions,
  deadLetterFromJson,
  deadLetterRedrivesJson,
  deadLetterRow,
  deadLetterToJson,
  refreshedDeadLetter,
} from '@factline/core/adapter';
import { checkSqliteDeadLetterStoreOptions } from '../options.ts';
import { guardConsumerStore, openConsumerTables, type SqliteConsumerStoreOptions } from './sqlite-consumer-tables.ts';

interface DeadLetterRecordRow {
  record: string;
}

/**
 * Dead letters in the SQLite file (migration component `consumer`), kept
 * after a redrive or a discard with their history. A new failure of a
 * message whose record is live refreshes that record; an update applies only
 * to a record still dead with the failure it was read with.
 *
 * @example
 * const deadLetters = getSqliteDeadLetterStore({ database: db });
 * const failed = await deadLetters.list({ consumer: 'billing' });
 */
export function getSqliteDeadLetterStore(options: SqliteConsumerStoreOptions): DeadLetterStore {
  checkSqliteDeadLetterStoreOptions(options);
  const db = openConsumerTables(options);
  const guard = <T>(work: () => T): T => guardConsumerStore(db, work, 'dead-letter store');
  const insert = db.prepare(
    `INSERT OR IGNORE INTO factline_dead_letters
       (id, consumer, topic, message_id, message_type, error_type, error_message, dead_lettered_at, state, record)
     VALUES (@id, @consumer, @topic, @messageId, @messageType, @errorType, @errorMessage, @at, @state, @record)`,
  );
  const get = db.prepare<[string], DeadLetterRecordRow>('SELECT record FROM factline_dead_letters WHERE id = ?');
  /**
   * While the stored record is as read (its state, time and, given, redrives); a record written dead only
   * while no other record of its message is live.
   */
  const update = db.prepare<{
    state: string;
    record: string;
    id: string;
    readState: string;
    at: number;
    redrives: string | null;
  }>(
    `UPDATE factline_dead_letters SET state = @state, record = @record
      WHERE id = @id AND state = @readState AND dead_lettered_at = @at
        AND (@redrives IS NULL OR json_extract(record, '$.redrives') = @redrives)
        AND (@state <> 'dead' OR NOT EXISTS (
          SELECT 1 FROM factline_dead_letters other
           WHERE other.consumer = factline_dead_letters.consumer AND other.topic = factline_dead_letters.topic
             AND other.message_id = factline_dead_letters.message_id AND other.state = 'dead'
             AND other.id <> factline_dead_letters.id))`,
  );
  const live = db.prepare<[string, string, string], DeadLetterRecordRow>(
    `SELECT record FROM factline_dead_letters WHERE consumer = ? AND topic = ? AND message_id = ? AND state = 'dead'`,
  );
  const refresh = db.prepare(
    `UPDATE factline_dead_letters
        SET message_type = @messageType, error_type = @errorType, error_message = @errorMessage,
            dead_lettered_at = @at, record = @record
      WHERE id = @id AND state = 'dead'`,
  );
  /** In one transaction: the live record of the message refreshed, or the record added. */
  const add = db.transaction((record: DeadLetter) => {
    const found = live.get(record.consumer, record.topic, record.message.id);
    const { deadLetteredAt, ...row } = deadLetterRow(
      found ? refreshedDeadLetter(deadLetterFromJson(found.record), record) : record,
    );
    (found ? refresh : insert).run({ ...row, at: deadLetteredAt.getTime() });
  });
  return {
    add: async (record) => {
      guard(() => add(record));
    },
    async list(filter: DeadLetterFilter = {}) {
      const conditions = deadLetterConditions(filter);
      // Only the conditions the filter sets, so each can use the list index; every value is bound.
      const where = ['state = ?'];
      const values: unknown[] = [conditions.state];
      const equal = (column: string, value: string | null) => {
        if (value === null) return;
        where.push(`${column} = ?`);
        values.push(value);
      };
      equal('consumer', conditions.consumer);
      equal('topic', conditions.topic);
      equal('message_type', conditions.type);
      if (conditions.error !== null) {
        where.push('(error_type = ? OR instr(error_message, ?) > 0)');
        values.push(conditions.error, conditions.error);
      }
      if (conditions.since !== null) {
        where.push('dead_lettered_at >= ?');
        values.push(conditions.since.getTime());
      }
      if (conditions.until !== null) {
        where.push('dead_lettered_at <= ?');
        values.push(conditions.until.getTime());
      }
      const sql = `SELECT record FROM factline_dead_letters WHERE ${where.join(' AND ')} ORDER BY dead_lettered_at, id`;
      return guard(() =>
        (db.prepare(sql).all(...values) as DeadLetterRecordRow[]).map((r) => deadLetterFromJson(r.record)),
      );
    },
    async get(id) {
      const found = guard(() => get.get(id));
      return found && deadLetterFromJson(found.record);
    },
    update: async (record, read) =>
      guard(
        () =>
          update.run({
            state: record.state,
            record: deadLetterToJson(record),
            id: record.id,
            readState: read?.state ?? 'dead',
            at: (read ?? record).deadLetteredAt.getTime(),
            redrives: read ? deadLetterRedrivesJson(read) : null,
          }).changes > 0,
      ),
  };
}
