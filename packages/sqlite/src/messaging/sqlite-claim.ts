import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';

/**
 * How many of a group's oldest rows a claim of `max` looks at first for keys
 * to hand out; while it finds fewer than `max` and the group goes on, it looks
 * 8 times further.
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

/** The claim's statements and its transaction, on `db`, with the transport's clock. */
export function prepareClaim(db: Database, now: () => number): { immediate: Claim } {
  const due = db.prepare<[{ topic: string; group: string; at: number; max: number; window: number }], DueRow>(
    CLAIM_SQL,
  );
  const lease = db.prepare<[number, string, number]>(
    `UPDATE factline_transport_messages
       SET visible_at = ?, delivery_count = delivery_count + 1, lease = ? WHERE seq = ?`,
  );
  /** Whether the group holds more than `@window` rows. */
  const deeper = db.prepare<[{ topic: string; group: string; window: number }], { more: number }>(
    `SELECT 1 AS more FROM factline_transport_messages INDEXED BY factline_transport_messages_queue
       WHERE topic = @topic AND group_name = @group ORDER BY seq LIMIT 1 OFFSET @window`,
  );
  return db.transaction((topic: string, group: string, max: number, visibility: number): ClaimedRow[] => {
    const at = now();
    let window = claimWindow(max);
    let rows = due.all({ topic, group, at, max, window });
    // Rows in flight, held back or scheduled later can fill the first window: look further.
    while (rows.length < max && deeper.get({ topic, group, window }) !== undefined) {
      window *= 8;
      rows = due.all({ topic, group, at, max, window });
    }
    return rows.map((row) => {
      const leaseId = randomUUID();
      lease.run(at + visibility, leaseId, row.seq);
      return { seq: row.seq, message: row.message, deliveryCount: row.delivery_count + 1, lease: leaseId };
    });
  });
}
