import type pg from 'pg';
import { checkOutHeld } from '../checkout.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { withClientHandle } from '../transaction-handle.ts';
import type { AckInTransaction } from './ack-in-transaction.ts';

/** A handler run waiting for its inbox transaction. */
export interface InboxMember {
  consumer: string;
  id: string;
  at: Date;
  work: (tx: pg.PoolClient) => unknown;
  /** The delivery's ack, when its transport works on the inbox's pool: it commits with the mark. */
  ack: AckInTransaction | undefined;
  resolve: (applied: boolean) => void;
  reject: (error: unknown) => void;
}

/** Gives a connection back to the pool, destroying it when a statement left it in an unknown state. */
export const releaseClient = (client: pg.PoolClient, broken: unknown): void =>
  client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);

export interface InboxGroupsOptions {
  pool: pg.Pool;
  /** The schema's name, and `s`, quoted. */
  schema: string;
  s: string;
  maxGroup: number;
  maxGroups: number;
  /** A run in a transaction of its own: for a run that failed in a group, and the others of that group. */
  applyAlone(member: InboxMember): Promise<boolean>;
}

export interface InboxGroups {
  /** Queues `member` for the next group; one that failed in a group runs alone instead, until it succeeds. */
  apply(member: InboxMember): void;
}

/**
 * Group commit: the runs queued meanwhile share one transaction, without
 * savepoints. One statement marks (and acks) the whole group, the handlers run
 * one after the other on the group's connection, one COMMIT covers them. No
 * savepoints: they would cost a round trip each (a savepoint statement cannot
 * share a round trip with a statement that has parameters). A run that fails
 * instead rolls the group back; it gets its error, and the others are run
 * again, each in a transaction of its own (their handlers run a second time;
 * what they wrote through the transaction went with the rollback). A run that
 * failed in a group runs alone until it succeeds.
 */
export function createInboxGroups(options: InboxGroupsOptions): InboxGroups {
  const { pool, schema, s, maxGroup, maxGroups, applyAlone } = options;
  const queue: InboxMember[] = [];
  let groupsRunning = 0;
  let scheduled = false;
  /** consumer + id of runs that failed in a group: their retries run alone, not breaking another group. */
  const suspects = new Set<string>();
  const SUSPECTS_KEPT = 1000;
  const suspect = (member: InboxMember) => {
    if (suspects.size >= SUSPECTS_KEPT) suspects.clear();
    suspects.add(suspectKey(member));
  };
  const suspectKey = (member: InboxMember) => `${member.consumer}\u0000${member.id}`;

  const groupMarkQuery = (members: readonly InboxMember[]): pg.QueryConfig => {
    const values: unknown[] = [members.map((m) => m.consumer), members.map((m) => m.id), members.map((m) => m.at)];
    // One DELETE per transport schema holding acks of this group (nearly always one, or none).
    const bySchema = new Map<string, InboxMember[]>();
    for (const member of members) {
      if (!member.ack) continue;
      const list = bySchema.get(member.ack.schema);
      if (list) list.push(member);
      else bySchema.set(member.ack.schema, [member]);
    }
    const acks = [...bySchema].map(([transport, acked], i) => {
      const first = values.length + 1;
      for (let column = 0; column < 4; column++) values.push(acked.map((m) => m.ack?.values[column]));
      return `, acked_${i} AS (
          DELETE FROM ${transport}.transport_messages t
           USING unnest($${first}::text[], $${first + 1}::text[], $${first + 2}::bigint[], $${first + 3}::uuid[])
                 AS k(topic, group_name, seq, lease)
           WHERE t.topic = k.topic AND t.group_name = k.group_name AND t.seq = k.seq AND t.lease = k.lease
          RETURNING 1
        )`;
    });
    return {
      name: statementName(schema, 'consumer-group-mark', ...bySchema.keys()),
      text: `WITH marked AS (
          INSERT INTO ${s}.inbox (consumer, message_id, at)
          SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
          ON CONFLICT DO NOTHING
          RETURNING consumer, message_id
        )${acks.join('')}
        SELECT consumer, message_id FROM marked`,
      values,
    };
  };

  /** Each member in a transaction of its own, settling it. */
  const applyEachAlone = (members: readonly InboxMember[]) => {
    for (const member of members) applyAlone(member).then(member.resolve, member.reject);
  };

  /**
   * Runs `first` as a group, then, while runs keep coming, the next groups on the same connection:
   * the next group's BEGIN rides along with this one's COMMIT (`COMMIT; BEGIN`, one round trip
   * instead of two).
   */
  const runGroups = async (first: InboxMember[]) => {
    let client: pg.PoolClient;
    try {
      client = await checkOutHeld(pool, 'a group of the inbox');
    } catch (failure) {
      for (const member of first) member.reject(failure);
      return;
    }
    let broken: unknown;
    const rollback = () => client.query('ROLLBACK').catch((rollbackError: unknown) => (broken = rollbackError));
    let members = first;
    /** A transaction is open on `client` (BEGIN sent with the last COMMIT). */
    let begun = false;
    try {
      while (members.length > 0) {
        /** Set when a run failed: the group is rolled back and its runs are settled another way. */
        let fallback: { failed: Map<InboxMember, unknown> } | undefined;
        let applied = new Set<InboxMember>();
        let next = false;
        try {
          if (!begun) await client.query('BEGIN');
          begun = true;
          const marked = await client.query<{ consumer: string; message_id: string }>(groupMarkQuery(members));
          const fresh = new Set(marked.rows.map((row) => `${row.consumer}\u0000${row.message_id}`));
          // The first of two runs of one message in a group is the one applied.
          applied = new Set(members.filter((m) => fresh.delete(suspectKey(m))));
          // One handler after the other: node-postgres does not take a query while one is running.
          const failed = new Map<InboxMember, unknown>();
          let innocent = false;
          for (const member of applied) {
            try {
              await withClientHandle(client, member.work);
            } catch (error) {
              // 25P02: an earlier run caught a failed statement and went on; the fault is not this run's.
              if ((error as { code?: unknown }).code === '25P02') innocent = true;
              else failed.set(member, error);
              break;
            }
          }
          if (failed.size > 0 || innocent) fallback = { failed };
          else {
            // Under load (runs waiting, or a group of several), expect a next group: its BEGIN
            // rides along with this COMMIT. A guess that finds nothing to run costs a ROLLBACK.
            next = queue.length > 0 || members.length > 1;
            const result = (await client.query(next ? 'COMMIT; BEGIN' : 'COMMIT')) as pg.QueryResult | pg.QueryResult[];
            const commit = Array.isArray(result) ? result[0] : result;
            begun = next;
            // COMMIT of a transaction that a swallowed statement error aborted reports ROLLBACK.
            if (commit?.command === 'ROLLBACK') fallback = { failed };
          }
        } catch (error) {
          // A failed COMMIT ends the transaction and skips a BEGIN sent with it; ROLLBACK is then a no-op.
          begun = false;
          await rollback();
          const failure = toStorageError(error);
          for (const member of members) member.reject(failure);
          return;
        }
        if (fallback) {
          // Ends the failed group (or the BEGIN sent with its COMMIT).
          begun = false;
          await rollback();
          for (const [member, error] of fallback.failed) {
            suspect(member);
            member.reject(error);
          }
          // The others again, each alone; a run that swallowed a failed statement then fails on its own.
          applyEachAlone(members.filter((m) => !fallback.failed.has(m)));
          return;
        }
        for (const member of members) {
          member.ack?.committed();
          member.resolve(applied.has(member));
        }
        if (!next) break;
        // Let the settled runs' consumers queue their next runs before taking the queue.
        await new Promise<void>((resolve) => setImmediate(resolve));
        members = queue.splice(0, maxGroup);
      }
      // Nothing came to use the BEGIN sent with the last COMMIT.
      if (begun) await rollback();
    } finally {
      releaseClient(client, broken);
    }
  };

  /** Starts a group with what is queued, once this turn of the event loop has queued all it will. */
  const schedule = () => {
    if (scheduled || groupsRunning >= maxGroups || queue.length === 0) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (groupsRunning >= maxGroups || queue.length === 0) return;
      const members = queue.splice(0, maxGroup);
      groupsRunning += 1;
      void runGroups(members).finally(() => {
        groupsRunning -= 1;
        schedule();
      });
      schedule();
    });
  };

  return {
    apply(member) {
      if (suspects.delete(suspectKey(member))) {
        // It failed in a group: alone until it succeeds.
        applyAlone(member).then(member.resolve, (error: unknown) => {
          suspect(member);
          member.reject(error);
        });
        return;
      }
      queue.push(member);
      schedule();
    },
  };
}
