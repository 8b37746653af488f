import { type Message, NoSubscriptionError } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import type { Database, Statement, Transaction } from 'better-sqlite3';
import { BY_KEY } from './sqlite-claim.ts';

/**
 * The transport's statements on the queue tables, prepared once per
 * connection, and its two write transactions (run them IMMEDIATE): a publish
 * copies each message to every group of the topic, a redeliver to one group.
 */
export interface QueueStatements {
  addGroup: Statement<[string, string, number]>;
  /** The group's rows (through the (topic, group_name) index) and the first one's message `createdAt`. */
  backlog: Statement<[string, string, string, string], { messages: number; oldest: string | null }>;
  /** When the earliest first row of a key in the group not visible at `at` becomes so. */
  nextDue: Statement<[{ topic: string; group: string; at: number }], { next: number | null }>;
  ack: Statement<[number, string]>;
  release: Statement<[number, number, string]>;
  extend: Statement<[number, number, string]>;
  /** A publish's copies: the messages to each group given. */
  insertAll: Transaction<(topic: string, groups: readonly string[], messages: readonly Message[]) => void>;
  /**
   * A redeliver: the messages to `group` alone, and the group recorded in the
   * same transaction (as `addGroup`): a redrive before its first consumer ran
   * is kept for it, and it gets what is published from then on.
   */
  redeliver: Transaction<(topic: string, group: string, messages: readonly Message[], at: number) => void>;
  /** A publish: returns the groups written to; with `required`, throws `NoSubscriptionError` when there are none. */
  publish: Transaction<(topic: string, messages: readonly Message[], required: boolean) => string[]>;
}

export function prepareQueueStatements(db: Database): QueueStatements {
  const groupsOf = db.prepare<[string], { group_name: string }>(
    'SELECT group_name FROM factline_transport_groups WHERE topic = ?',
  );
  const insert = db.prepare<[string, string, string, string, string, number]>(
    `INSERT INTO factline_transport_messages (topic, group_name, message_id, message, key, visible_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
  );

  const insertAll = db.transaction((topic: string, groups: readonly string[], messages: readonly Message[]) => {
    for (const group of groups) {
      for (const message of messages) {
        insert.run(topic, group, message.id, messageToJson(message), message.key, message.deliverAt?.getTime() ?? 0);
      }
    }
  });

  const addGroup = db.prepare<[string, string, number]>(
    'INSERT OR IGNORE INTO factline_transport_groups (topic, group_name, created_at) VALUES (?, ?, ?)',
  );

  return {
    backlog: db.prepare<[string, string, string, string], { messages: number; oldest: string | null }>(
      `SELECT COUNT(*) AS messages,
              (SELECT json_extract(message, '$.createdAt') FROM factline_transport_messages
                WHERE topic = ? AND group_name = ? ORDER BY seq LIMIT 1) AS oldest
       FROM factline_transport_messages WHERE topic = ? AND group_name = ?`,
    ),
    addGroup,
    // Asked after a claim found nothing: every key's first row is not visible, and no row of a key
    // can go out before its first, so the next due is the earliest of those first rows. One key
    // after another along the key index: a backlog of one key behind its first row is not read.
    nextDue: db.prepare<[{ topic: string; group: string; at: number }], { next: number | null }>(
      `WITH RECURSIVE heads(seq, key) AS (
         SELECT seq, key FROM factline_transport_messages
          WHERE seq = (SELECT seq ${BY_KEY} ORDER BY key, seq LIMIT 1)
         UNION ALL
         SELECT m.seq, m.key FROM heads h CROSS JOIN factline_transport_messages m
             ON m.seq = (SELECT seq ${BY_KEY} AND key > h.key ORDER BY key, seq LIMIT 1)
       )
       SELECT MIN(m.visible_at) AS next FROM heads h CROSS JOIN factline_transport_messages m ON m.seq = h.seq
        WHERE m.visible_at > @at`,
    ),
    ack: db.prepare<[number, string]>('DELETE FROM factline_transport_messages WHERE seq = ? AND lease = ?'),
    release: db.prepare<[number, number, string]>(
      'UPDATE factline_transport_messages SET visible_at = ?, lease = NULL WHERE seq = ? AND lease = ?',
    ),
    extend: db.prepare<[number, number, string]>(
      'UPDATE factline_transport_messages SET visible_at = ? WHERE seq = ? AND lease = ?',
    ),
    insertAll,
    redeliver: db.transaction((topic: string, group: string, messages: readonly Message[], at: number) => {
      addGroup.run(topic, group, at);
      insertAll(topic, [group], messages);
    }),
    publish: db.transaction((topic: string, messages: readonly Message[], required: boolean) => {
      const groups = groupsOf.all(topic).map((row) => row.group_name);
      // Inside the write transaction: no subscription can be declared between this check and the insert.
      if (required && groups.length === 0) throw new NoSubscriptionError(topic);
      insertAll(topic, groups, messages);
      return groups;
    }),
  };
}
