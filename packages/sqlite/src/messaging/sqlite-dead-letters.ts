import type { DeadLetter, DeadLetterFilter, DeadLetterStore } from '@factline/core';
import {
  deadLetterConditions,
  deadLetterFromJson,
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
  const update = db.prepare<[string, string, string, number]>(
    `UPDATE factline_dead_letters SET state = ?, record = ?
      WHERE id = ? AND state = 'dead' AND dead_lettered_at = ?`,
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
    update: async (record) =>
      guard(
        () =>
          update.run(record.state, deadLetterToJson(record), record.id, record.deadLetteredAt.getTime()).changes > 0,
      ),
  };
}
