import type pg from 'pg';

/**
 * How many of a group's oldest rows a claim of `max` looks at first for keys
 * to hand out; while it finds fewer than `max` and the window was full, it
 * looks 8 times further. 4 × `max`: at 16 × a claim of 16 from 5,000 queued
 * rows took 1.1–1.3 ms against 0.74 ms, about 25 µs a message.
 */
export const claimWindow = (max: number): number => Math.max(64, 4 * max);

/**
 * The transport's claim (`$1` topic, `$2` group, `$3` max, `$4` visibility in
 * ms, `$5` the window, `claimWindow(max)`), one statement: up to `max` rows of
 * the group handed out under new leases, a row only with every earlier row of
 * its key (per-key order across competing consumers, in any number of
 * processes).
 *
 * - win: the group's oldest rows, in flight or not, in seq order (the primary
 *   key). It is a prefix of the group, so a key's first row there is its first
 *   in the group. A last row of nulls says the window was full (the caller
 *   looks further when it got fewer than `max`).
 * - heads: those first rows, where visible, locked without waiting. A key
 *   whose first row is in flight, waiting for a retry, scheduled later, or
 *   being claimed by someone else (locked) is skipped whole. A later row of a
 *   key is nobody's head while that first row exists, so no concurrent claim,
 *   however stale its snapshot, takes it. A key with any row of the window in
 *   flight (`busy`: under a lease not run out) is skipped too: seq is taken at
 *   insert, so a publish that committed after a later one of its key (a slow
 *   statement, a large batch) adds a first row while the later one is held,
 *   and handing it out would run the key twice at once. (A row in flight past
 *   the window is not seen: it would take a window of rows ahead of it, all
 *   waiting or in flight, between the two rows of the key.)
 * - candidates: the heads and the rows of their keys after them in the
 *   window, the first `max` by seq.
 * - followers: the visible candidates with no row of their key not due before
 *   them, locked (waiting: only a settle holds them, briefly). Locking reads
 *   the newest version: one settled or released meanwhile drops out.
 * - picked: the heads among the candidates, and each follower whose key's
 *   earlier candidates were all locked, so a key's rows go out as a
 *   consecutive run, and never more than `max` rows (a head past the first
 *   `max` candidates waits for the next claim; its lock ends with the statement).
 *
 * Picked rows are found again by the `ctid` their lock returned (a TID scan:
 * the rows are locked, so their ctids hold; joined on `seq`, the planner, with
 * no statistics yet on a young queue table, took the join as a scan of the
 * whole group per claim), through `ARRAY(…)`, computed once (a rescan would
 * skip the rows this statement already updated and pick later ones, passing
 * `max`). Cost: one pass over the window per claim, whatever the number of keys.
 */
export const claimStatement = (s: string): string => `WITH win AS MATERIALIZED (
      SELECT w.ctid, w.seq, w.key, w.visible_at <= now() AS due,
             w.lease IS NOT NULL AND w.visible_at > now() AS busy
        FROM ${s}.transport_messages w
       WHERE w.topic = $1 AND w.group_name = $2
       ORDER BY w.seq
       LIMIT $5
    ), heads AS MATERIALIZED (
      SELECT t.ctid, t.seq, t.key FROM ${s}.transport_messages t
       WHERE t.ctid = ANY (ARRAY(
               SELECT DISTINCT ON (f.key) f.ctid FROM win f
                WHERE f.key NOT IN (SELECT b.key FROM win b WHERE b.busy)
                ORDER BY f.key, f.seq))
         AND t.visible_at <= now()
       ORDER BY t.seq
       LIMIT $3
       FOR UPDATE SKIP LOCKED
    ), candidates AS MATERIALIZED (
      SELECT w.ctid, w.seq, w.key, w.seq = h.seq AS head, w.due FROM win w JOIN heads h ON h.key = w.key
       ORDER BY w.seq
       LIMIT $3
    ), followers AS MATERIALIZED (
      SELECT t.ctid, t.seq FROM ${s}.transport_messages t
       WHERE t.ctid = ANY (ARRAY(
               SELECT c.ctid FROM candidates c
                WHERE NOT c.head AND c.due
                  AND NOT EXISTS (SELECT 1 FROM candidates w WHERE w.key = c.key AND w.seq < c.seq AND NOT w.due)))
         AND t.visible_at <= now()
       FOR UPDATE
    ), picked AS MATERIALIZED (
      SELECT h.ctid FROM heads h JOIN candidates c ON c.seq = h.seq
      UNION ALL
      SELECT f.ctid FROM followers f JOIN candidates c ON c.seq = f.seq
       WHERE NOT EXISTS (
         SELECT 1 FROM candidates w
          WHERE w.key = c.key AND w.seq < c.seq AND NOT w.head AND w.seq NOT IN (SELECT seq FROM followers))
    ), taken AS (
      UPDATE ${s}.transport_messages m
         SET visible_at = now() + $4::float8 * interval '1 millisecond',
             delivery_count = m.delivery_count + 1,
             lease = gen_random_uuid()
       WHERE m.ctid = ANY (ARRAY(SELECT ctid FROM picked))
      RETURNING m.seq::text AS seq, m.message::text AS message, m.delivery_count, m.lease::text AS lease
    )
    SELECT seq, message, delivery_count, lease FROM taken
    UNION ALL
    SELECT NULL, NULL, NULL, NULL WHERE (SELECT count(*) FROM win) >= $5`;

/** A row handed out: its message as stored, and the lease a settle must name. */
export interface ClaimedRow {
  seq: string;
  message: string;
  delivery_count: number;
  lease: string;
}

/** Runs one of the transport's statements under its prepared name, resolving with the rows. */
export type QueueQuery = <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) => Promise<R[]>;

/**
 * Claims up to `max` rows of a group for `visibility` ms with `statement`
 * (`claimStatement`), looking 8 times further each round while the window was
 * full and fewer than `max` were found; the rows in seq order. A wider round
 * that fails ends the claim with the rows the earlier rounds took; a failing
 * first round rejects.
 */
export async function claim(
  query: QueueQuery,
  statement: string,
  topic: string,
  group: string,
  max: number,
  visibility: number,
): Promise<ClaimedRow[]> {
  const rows: ClaimedRow[] = [];
  for (let window = claimWindow(max); ; window *= 8) {
    let found: ClaimedRow[];
    try {
      found = await query<ClaimedRow>('take', statement, [topic, group, max - rows.length, visibility, window]);
    } catch (error) {
      // The rows an earlier round took are leased to this claim: handed out, they are not left
      // unseen until their visibility ends. A failure that lasts fails the next claim's first round.
      if (rows.length === 0) throw error;
      break;
    }
    for (const row of found) if (row.seq != null) rows.push(row);
    // No marker row: the window held the whole group. Otherwise rows in flight, held back or
    // scheduled later filled it: look further while short (the rows taken now hold their keys).
    if (rows.length >= max || found.every((row) => row.seq != null)) break;
  }
  // seq is a bigint as text: a shorter one is smaller.
  return rows.sort((a, b) => a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
}
