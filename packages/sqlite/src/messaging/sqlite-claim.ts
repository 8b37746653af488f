import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { shareWriteLock } from '../write-share.ts';

/**
 * How many of a group's oldest rows a claim of `max` looks at first for keys
 * to hand out; while it finds fewer than `max` and the group goes on, it walks
 * the group's keys (`CLAIM_BY_KEYS_SQL`, up to as many keys as the window had
 * rows), then, with more keys than that, looks 8 times further.
 */
export const claimWindow = (max: number): number => Math.max(64, 16 * max);

/**
 * The claim: the visible rows among the group's oldest (`@window`, in seq
 * order by the queue index) that no row of their key not visible precedes (in
 * flight, waiting for a delayed retry, scheduled later), the first `@max` by
 * seq. The window is a prefix of the group, so a row's earlier rows of its key
 * are all in it. Claims are serialized (IMMEDIATE), so a row goes out only with
 * every earlier row of its key in the same claim, and a key is held by one
 * subscription at a time until all it was handed is settled. Cost: one pass
 * over the window (see `claimWindow`).
 */
export const CLAIM_SQL = `WITH win AS (
      SELECT seq, key, visible_at FROM factline_transport_messages INDEXED BY factline_transport_messages_queue
       WHERE topic = @topic AND group_name = @group ORDER BY seq LIMIT @window
    ), stops AS (
      SELECT key, MIN(seq) AS seq FROM win WHERE visible_at > @at GROUP BY key
    )
    SELECT m.seq, m.message, m.delivery_count
      FROM win w JOIN factline_transport_messages m ON m.seq = w.seq LEFT JOIN stops s ON s.key = w.key
     WHERE w.visible_at <= @at AND (s.seq IS NULL OR w.seq < s.seq)
     ORDER BY w.seq LIMIT @max`;

/** The group's rows of one key in seq order, by the key index (it ends with the rowid, seq). */
export const BY_KEY = `FROM factline_transport_messages INDEXED BY factline_transport_messages_key
       WHERE topic = @topic AND group_name = @group`;

/**
 * The same claim as `CLAIM_SQL` over the whole group, found by keys instead
 * of by a prefix, for a group whose oldest rows are held back (a hot key's
 * backlog behind its first row in flight):
 *
 * - heads: each key's first row, one key after another along the key index
 *   (a seek each, however many rows the key has), up to `@keys` + 1 keys.
 * - due_heads: the keys whose first row is visible, the first `@max` by seq.
 *   A key with a later head has `@max` claimable rows ahead of all of its own.
 * - runs: each of those keys' first `@max` rows, a prefix of the key, so the
 *   rows it hands out are those with no row of their key not visible ahead.
 *
 * With more than `@keys` keys the walk stops and a last row of nulls says the
 * rows found are not the claim's (the caller looks further by prefix). Cost:
 * two seeks a key walked, and `@max` × `@max` rows at most.
 */
export const CLAIM_BY_KEYS_SQL = `WITH RECURSIVE heads(n, seq, key, visible_at) AS (
      SELECT 1, m.seq, m.key, m.visible_at FROM factline_transport_messages m
       WHERE m.seq = (SELECT seq ${BY_KEY} ORDER BY key, seq LIMIT 1)
      UNION ALL
      SELECT h.n + 1, m.seq, m.key, m.visible_at FROM heads h CROSS JOIN factline_transport_messages m
          ON m.seq = (SELECT seq ${BY_KEY} AND key > h.key ORDER BY key, seq LIMIT 1)
       WHERE h.n <= @keys
    ), due_heads AS MATERIALIZED (
      SELECT key FROM heads WHERE visible_at <= @at ORDER BY seq LIMIT @max
    ), runs AS MATERIALIZED (
      SELECT m.seq, m.key, m.visible_at FROM due_heads d CROSS JOIN factline_transport_messages m
          ON m.seq IN (SELECT seq ${BY_KEY} AND key = d.key ORDER BY seq LIMIT @max)
    ), stops AS (
      SELECT key, MIN(seq) AS seq FROM runs WHERE visible_at > @at GROUP BY key
    )
    SELECT * FROM (
      SELECT r.seq, m.message, m.delivery_count
        FROM runs r CROSS JOIN factline_transport_messages m ON m.seq = r.seq LEFT JOIN stops s ON s.key = r.key
       WHERE r.visible_at <= @at AND (s.seq IS NULL OR r.seq < s.seq)
       ORDER BY r.seq LIMIT @max)
    UNION ALL
    SELECT NULL, NULL, NULL WHERE (SELECT MAX(n) FROM heads) > @keys`;

interface DueRow {
  seq: number;
  message: string;
  delivery_count: number;
}

/** A row handed out: its message as stored, and the lease a settle must name. */
export interface ClaimedRow {
  seq: number;
  message: string;
  deliveryCount: number;
  lease: string;
}

/** Claims up to `max` rows of a group for `visibility` ms, each under a new lease (run it IMMEDIATE). */
export type Claim = (topic: string, group: string, max: number, visibility: number) => ClaimedRow[];

/**
 * The claim's statements and its transaction, on `db`, with the transport's
 * clock. The time each claim holds the write lock counts with the
 * connection's other writes (`write-share.ts`): an SQLite inbox on the same
 * connection leaves the lock free after its group commits and these claims
 * together held it back to back. A claim itself never waits.
 */
export function prepareClaim(db: Database, now: () => number): { immediate: Claim } {
  const share = shareWriteLock(db);
  const due = db.prepare<[{ topic: string; group: string; at: number; max: number; window: number }], DueRow>(
    CLAIM_SQL,
  );
  const lease = db.prepare<[number, string, number]>(
    `UPDATE factline_transport_messages
       SET visible_at = ?, delivery_count = delivery_count + 1, lease = ? WHERE seq = ?`,
  );
  const byKeys = db.prepare<
    [{ topic: string; group: string; at: number; max: number; keys: number }],
    DueRow | { seq: null }
  >(CLAIM_BY_KEYS_SQL);
  /** Whether the group holds more than `@window` rows. */
  const deeper = db.prepare<[{ topic: string; group: string; window: number }], { more: number }>(
    `SELECT 1 AS more FROM factline_transport_messages INDEXED BY factline_transport_messages_queue
       WHERE topic = @topic AND group_name = @group ORDER BY seq LIMIT 1 OFFSET @window`,
  );
  const claim = db.transaction((topic: string, group: string, max: number, visibility: number): ClaimedRow[] => {
    const at = now();
    let window = claimWindow(max);
    let rows = due.all({ topic, group, at, max, window });
    // Rows in flight, held back or scheduled later can fill the first window: look further, by keys
    // while the group has no more keys than the window had rows, else by a wider prefix.
    while (rows.length < max && deeper.get({ topic, group, window }) !== undefined) {
      const found = byKeys.all({ topic, group, at, max, keys: window });
      if (found.every((row): row is DueRow => row.seq !== null)) {
        rows = found;
        break;
      }
      window *= 8;
      rows = due.all({ topic, group, at, max, window });
    }
    return rows.map((row) => {
      const leaseId = randomUUID();
      lease.run(at + visibility, leaseId, row.seq);
      return { seq: row.seq, message: row.message, deliveryCount: row.delivery_count + 1, lease: leaseId };
    });
  });
  return {
    immediate: (topic, group, max, visibility) => share.write(() => claim.immediate(topic, group, max, visibility)),
  };
}
