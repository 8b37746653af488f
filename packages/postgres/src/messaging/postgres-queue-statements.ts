import type { Message } from '@factline/core';
import { claimStatement } from './postgres-claim.ts';

/**
 * The transport's statements on the queue tables of schema `s` (quoted). Rows are named by topic,
 * group and seq, and a settle only changes a row while its lease is the one
 * the delivery was handed.
 */
export function queueStatements(s: string) {
  /**
   * The messages of a publish or redeliver: $2…$6 one array each (`messageColumns`), in order.
   * Times come as spans from the publishing process's clock, put on the database's: `deliver_at`
   * now() plus the delay, `created_at` now() less the age (null when out of range).
   */
  const input = `input AS (
      SELECT u.id, u.key, u.body, u.ord,
             now() + u.delay_ms * interval '1 millisecond' AS deliver_at,
             now() - u.age_ms * interval '1 millisecond' AS created_at
        FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[])
             WITH ORDINALITY AS u(id, key, body, delay_ms, age_ms, ord)
    )`;

  return {
    /** Hands out up to `max` rows, each only with every earlier row of its key: see `claimStatement`. */
    CLAIM: claimStatement(s),
    REGISTER: `INSERT INTO ${s}.transport_groups (topic, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
    /**
     * One row per message and registered group ($1 the topic), in publish
     * order, skipping ids the group still holds; one notification ($7, $8)
     * when anything was inserted (sent at commit). Returns how many groups the
     * topic has, read in the insert's own snapshot, so a publish that requires
     * a subscription and finds none has written nothing.
     */
    PUBLISH: `WITH ${input}, inserted AS (
      INSERT INTO ${s}.transport_messages (topic, group_name, id, key, message, visible_at, created_at)
      SELECT g.topic, g.group_name, i.id, i.key, i.body::json, coalesce(i.deliver_at, now()), i.created_at
        FROM ${s}.transport_groups g CROSS JOIN input i
       WHERE g.topic = $1
       ORDER BY g.group_name, i.ord
      ON CONFLICT (topic, group_name, id) DO NOTHING
      RETURNING 1
    )
    SELECT c.groups, CASE WHEN c.n > 0 THEN pg_notify($7, $8) END AS notified
      FROM (SELECT (SELECT count(*) FROM inserted) AS n,
                   (SELECT count(*)::int FROM ${s}.transport_groups WHERE topic = $1) AS groups) c`,
    /**
     * A redeliver (a dead-letter redrive): one row per message for group $7
     * alone, in order, and the group registered in the same statement (as
     * `REGISTER`), so the messages are kept for it whether or not it was
     * registered before (a redrive before the group's first consumer ran, or
     * after the tables were made again), and it gets what is published from
     * then on. A message the group still holds (its dead-lettering consumer
     * has not acked it yet) makes that row due again under no lease: the
     * pending ack then finds nothing to delete, and the message is delivered
     * once more instead of being lost. Returns how many rows it wrote (one
     * per message); notifies as `PUBLISH`.
     */
    REDELIVER: `WITH ${input}, registered AS (
      INSERT INTO ${s}.transport_groups (topic, group_name) VALUES ($1, $7::text) ON CONFLICT DO NOTHING
    ), inserted AS (
      INSERT INTO ${s}.transport_messages (topic, group_name, id, key, message, visible_at, created_at)
      SELECT $1, $7::text, i.id, i.key, i.body::json, coalesce(i.deliver_at, now()), i.created_at
        FROM input i
       ORDER BY i.ord
      ON CONFLICT (topic, group_name, id) DO UPDATE
         SET message = excluded.message, visible_at = excluded.visible_at, created_at = excluded.created_at,
             lease = NULL, delivery_count = 0
      RETURNING 1
    )
    SELECT c.n AS written, CASE WHEN c.n > 0 THEN pg_notify($8, $9) END AS notified
      FROM (SELECT (SELECT count(*)::int FROM inserted) AS n) c`,
    /**
     * Milliseconds until the group's next row not visible yet becomes so (null: none). Rows visible
     * but held back behind their key's earlier rows are left out: waking for them would spin.
     */
    NEXT_DUE: `SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::float8 AS ms
      FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2 AND visible_at > now()`,
    ACK: `DELETE FROM ${s}.transport_messages
     WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid`,
    /** One row (the notification) when the row was released. */
    RELEASE: `WITH released AS (
      UPDATE ${s}.transport_messages
         SET visible_at = now() + $5::float8 * interval '1 millisecond', lease = NULL
       WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid
      RETURNING 1
    )
    SELECT pg_notify($6, $7) FROM released`,
    EXTEND: `UPDATE ${s}.transport_messages
       SET visible_at = now() + $5::float8 * interval '1 millisecond'
     WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid`,
  };
}

export type QueueStatements = ReturnType<typeof queueStatements>;

/** A span the database can take from its now() either way: about 3,000 years. */
const MOST_SPAN_MS = 1e14;

/**
 * Publish columns, one array each, in publish order: ids, keys, messages as
 * JSON, then two spans read off this process's clock once (`now`), which the
 * statement puts on the database's clock: the delay until `deliverAt` (null
 * without one; a time passed is 0), and the age of `createdAt` (null when
 * over about 3,000 years either way, past what a timestamp holds).
 */
export function messageColumns(
  messages: readonly Message[],
  now: number = Date.now(),
): [string[], string[], string[], (number | null)[], (number | null)[]] {
  // Checked by assertMessages first: ids and keys are names, createdAt and deliverAt valid Dates, the rest JSON.
  return [
    messages.map((m) => m.id),
    messages.map((m) => m.key),
    messages.map((m) => JSON.stringify(m)),
    messages.map((m) => (m.deliverAt ? Math.max(0, m.deliverAt.getTime() - now) : null)),
    messages.map((m) => {
      const age = now - m.createdAt.getTime();
      return Math.abs(age) <= MOST_SPAN_MS ? age : null;
    }),
  ];
}
