import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterStore,
  type Inbox,
  StorageError,
  StoreClosedError,
} from '@factline/core';
import { assertIntegerOption, deadLetterFromJson, deadLetterToJson } from '@factline/core/adapter';
import type pg from 'pg';
import { checkOutHeld } from '../checkout.ts';
import { migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresDeadLetterStoreOptions, checkPostgresInboxOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { withClientHandle } from '../transaction-handle.ts';
import { type AckInTransaction, ackInTransactionOf } from './ack-in-transaction.ts';
import { beginWith } from './begin-with.ts';

export const consumerMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'consumer inbox and dead letters',
    up: (s) => `
      -- Message ids each consumer has applied, for the retention window.
      CREATE TABLE ${s}.inbox (
        consumer text NOT NULL,
        message_id text NOT NULL,
        at timestamptz NOT NULL,
        PRIMARY KEY (consumer, message_id)
      );
      CREATE INDEX inbox_at ON ${s}.inbox (at);

      -- Dead letters: the whole record as JSON, plus the columns filters use.
      CREATE TABLE ${s}.dead_letters (
        id text PRIMARY KEY,
        consumer text NOT NULL,
        topic text NOT NULL,
        message_id text NOT NULL,
        message_type text NOT NULL,
        error_type text NOT NULL,
        error_message text NOT NULL,
        dead_lettered_at timestamptz NOT NULL,
        state text NOT NULL,
        record json NOT NULL
      );
      CREATE INDEX dead_letters_list ON ${s}.dead_letters (consumer, state, dead_lettered_at);
      -- One live dead letter per consumer and message: a consumer that dies
      -- between recording it and the ack records it once.
      CREATE UNIQUE INDEX dead_letters_live ON ${s}.dead_letters (consumer, message_id) WHERE state = 'dead';
    `,
  },
];

export interface PostgresConsumerStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** The pool the handler's writes should use (e.g. a store's or a transport's `.pool`); never ended here. */
  pool?: pg.Pool;
  /** The schema holding the tables; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool opened from `connectionString`. Default 10. */
  poolSize?: number;
}

export interface PostgresInboxOptions extends PostgresConsumerStoreOptions {
  /**
   * Group commit (default false): handler runs that arrive together share
   * one transaction. One statement writes all their inbox marks (and acks),
   * the handlers run one after the other on that transaction's connection,
   * and one commit covers them: about one round trip per message (the
   * handler's own statements) instead of four. When a handler throws, the
   * group is rolled back: that run gets its error, and the other runs are
   * done again, each in a transaction of its own (their handlers run a
   * second time; what they wrote through the transaction was rolled back).
   * A message that failed in a group runs alone until it succeeds. The runs of a
   * group take turns on one connection, so use it for handlers that only
   * write to the database: a handler awaiting something slow holds up the
   * others.
   */
  groupCommit?: boolean;
  /** Most handler runs in one group. Default 64. */
  maxGroup?: number;
  /**
   * Group transactions open at once, each on a connection of its own: while
   * one group runs, the runs arriving meanwhile form the next. Default 2.
   */
  maxGroups?: number;
}

interface Member {
  consumer: string;
  id: string;
  at: Date;
  work: (tx: pg.PoolClient) => unknown;
  ack: AckInTransaction | undefined;
  resolve: (applied: boolean) => void;
  reject: (error: unknown) => void;
}

export interface PostgresInbox extends Inbox<pg.PoolClient> {
  readonly pool: pg.Pool;
  /** Ends the pool if the inbox opened it. */
  close(): Promise<void>;
}

export interface PostgresDeadLetterStore extends DeadLetterStore {
  readonly pool: pg.Pool;
  /** Ends the pool if the store opened it. */
  close(): Promise<void>;
}

async function open(options: PostgresConsumerStoreOptions, what: 'inbox' | 'dead-letter store') {
  const schema = options?.schema ?? 'factline';
  const s = quoteSchema(schema);
  const poolSize = assertIntegerOption(options?.poolSize, 'poolSize', 1) ?? 10;
  const { pool, own } = await migratedPool({
    pool: options?.pool,
    connectionString: options?.connectionString,
    poolSize,
    schema,
    component: 'consumer',
    migrations: consumerMigrations,
  });
  let closed = false;
  return {
    pool,
    s,
    schema,
    closed: () => closed,
    query: async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) => {
      if (closed) throw new StoreClosedError(what);
      try {
        return await pool.query<R>({ name: statementName(schema, `consumer-${name}`), text, values });
      } catch (error) {
        throw toStorageError(error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (own) await pool.end().catch(() => undefined);
    },
  };
}

/**
 * A consumer inbox in PostgreSQL (migration component `consumer`). With it,
 * `createConsumer` runs each handler inside one transaction on a pool client
 * that first writes the inbox mark, and passes the handler that client: rows
 * it writes through it commit together with the mark, so a message is applied
 * once even when the process dies between the handler and the ack. Two
 * consumers handed the same message at once cannot both apply it: the second
 * mark waits for the first transaction and, when it commits, finds the
 * duplicate.
 *
 * @example
 * const consumer = createConsumer({
 *   name: 'billing', topic: 'orders', transport,
 *   inbox: await getPostgresInbox({ pool }),
 *   handler: async (message, client) => {
 *     await client.query('INSERT INTO invoices (order_id) VALUES ($1)', [message.key]);
 *   },
 * });
 */
export async function getPostgresInbox(options: PostgresInboxOptions): Promise<PostgresInbox> {
  checkPostgresInboxOptions(options);
  const groupCommit = options?.groupCommit ?? false;
  const maxGroup = assertIntegerOption(options?.maxGroup, 'maxGroup', 1) ?? 64;
  const maxGroups = assertIntegerOption(options?.maxGroups, 'maxGroups', 1) ?? 2;
  const base = await open(options, 'inbox');
  const { pool, s, schema } = base;
  const MARK = `INSERT INTO ${s}.inbox (consumer, message_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`;
  /**
   * The mark, and with a delivery of a transport on this pool its ack, in one
   * statement (one round trip). Both are undone with the transaction or
   * savepoint when the handler fails; a duplicate keeps the ack.
   */
  const markQuery = (member: Member): pg.QueryConfig => {
    const values = [member.consumer, member.id, member.at];
    if (!member.ack)
      return { name: statementName(schema, 'consumer-mark'), text: `${MARK} RETURNING true AS marked`, values };
    const transport = member.ack.schema;
    return {
      name: statementName(schema, 'consumer-mark-ack', transport),
      text: `WITH marked AS (${MARK} RETURNING 1),
        acked AS (
          DELETE FROM ${transport}.transport_messages
           WHERE topic = $4 AND group_name = $5 AND seq = $6::bigint AND lease = $7::uuid
          RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM marked) AS marked, (SELECT count(*) FROM acked) AS acked`,
      values: [...values, ...member.ack.values],
    };
  };
  const releaseClient = (client: pg.PoolClient, broken: unknown) =>
    client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);

  /** One transaction per message. */
  const applyAlone = async (member: Member): Promise<boolean> => {
    const client = await checkOutHeld(pool, `the inbox of consumer '${member.consumer}'`);
    let broken: unknown;
    let inHandler = false;
    try {
      // BEGIN and the mark (with the ack) share one round trip.
      const rows = await beginWith(client, markQuery(member), (error) => {
        broken = error;
      });
      const applied = rows[0]?.[0] === 't';
      if (applied) {
        inHandler = true;
        await withClientHandle(client, member.work);
        inHandler = false;
      }
      // A duplicate commits too: its ack.
      const commit = await client.query('COMMIT');
      if (commit.command === 'ROLLBACK') {
        // COMMIT of a transaction that a failed statement aborted reports ROLLBACK, not an error.
        inHandler = true;
        throw new StorageError(
          'the handler caught a failed statement and returned: its transaction was aborted and nothing it wrote was committed (rethrow the error, or use a savepoint of your own)',
        );
      }
      member.ack?.committed();
      return applied;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => (broken = rollbackError));
      // The handler's own errors go to the retry policy as they are.
      throw inHandler ? error : toStorageError(error);
    } finally {
      releaseClient(client, broken);
    }
  };

  // --- Group commit: the runs queued meanwhile share one transaction, without savepoints ---------
  //
  // One statement marks (and acks) the whole group, the handlers run one after the other on the
  // group's connection, one COMMIT covers them. No savepoints: they would
  // cost a round trip each (a savepoint statement cannot share a round trip with a statement that
  // has parameters). A run that fails instead rolls the group back; it gets its error, and the
  // others are run again, each in a transaction of its own (their handlers run a second time; what
  // they wrote through the transaction went with the rollback). A run that failed in a group runs
  // alone until it succeeds.

  const queue: Member[] = [];
  let groupsRunning = 0;
  let scheduled = false;
  /** consumer + id of runs that failed in a group: their retries run alone, not breaking another group. */
  const suspects = new Set<string>();
  const SUSPECTS_KEPT = 1000;
  const suspect = (member: Member) => {
    if (suspects.size >= SUSPECTS_KEPT) suspects.clear();
    suspects.add(suspectKey(member));
  };
  const suspectKey = (member: Member) => `${member.consumer}\u0000${member.id}`;

  const groupMarkQuery = (members: readonly Member[]): pg.QueryConfig => {
    const values: unknown[] = [members.map((m) => m.consumer), members.map((m) => m.id), members.map((m) => m.at)];
    // One DELETE per transport schema holding acks of this group (nearly always one, or none).
    const bySchema = new Map<string, Member[]>();
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
  const applyEachAlone = (members: readonly Member[]) => {
    for (const member of members) applyAlone(member).then(member.resolve, member.reject);
  };

  /**
   * Runs `first` as a group, then, while runs keep coming, the next groups on the same connection:
   * the next group's BEGIN rides along with this one's COMMIT (`COMMIT; BEGIN`, one round trip
   * instead of two).
   */
  const runGroups = async (first: Member[]) => {
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
        let fallback: { failed: Map<Member, unknown> } | undefined;
        let applied = new Set<Member>();
        let next = false;
        try {
          if (!begun) await client.query('BEGIN');
          begun = true;
          const marked = await client.query<{ consumer: string; message_id: string }>(groupMarkQuery(members));
          const fresh = new Set(marked.rows.map((row) => `${row.consumer}\u0000${row.message_id}`));
          // The first of two runs of one message in a group is the one applied.
          applied = new Set(members.filter((m) => fresh.delete(suspectKey(m))));
          // One handler after the other: node-postgres does not take a query while one is running.
          const failed = new Map<Member, unknown>();
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
    pool,
    has: async (consumer, id) =>
      (await base.query('has', `SELECT 1 FROM ${s}.inbox WHERE consumer = $1 AND message_id = $2`, [consumer, id]))
        .rowCount !== 0,
    add: async (consumer, id, at) => {
      await base.query('mark', MARK, [consumer, id, at]);
    },
    prune: async (before) => {
      await base.query('prune', `DELETE FROM ${s}.inbox WHERE at < $1`, [before]);
    },
    applyOnce(consumer, id, at, work, delivery) {
      if (base.closed()) return Promise.reject(new StoreClosedError('inbox'));
      // The transport's delivery, when it lives in this pool's database, is acked in the same transaction.
      const ack = ackInTransactionOf(delivery);
      const ackHere = ack?.pool === pool ? ack : undefined;
      return new Promise<boolean>((resolve, reject) => {
        const member: Member = { consumer, id, at, work, ack: ackHere, resolve, reject };
        if (!groupCommit) {
          applyAlone(member).then(resolve, reject);
          return;
        }
        if (suspects.delete(suspectKey(member))) {
          // It failed in a group: alone until it succeeds.
          applyAlone(member).then(resolve, (error: unknown) => {
            suspect(member);
            reject(error);
          });
          return;
        }
        queue.push(member);
        schedule();
      });
    },
    close: base.close,
  };
}

/**
 * Dead letters in PostgreSQL (migration component `consumer`), kept after a
 * redrive or a discard with their history. Adding a second live dead letter
 * for the same consumer and message is a no-op.
 */
export async function getPostgresDeadLetterStore(
  options: PostgresConsumerStoreOptions,
): Promise<PostgresDeadLetterStore> {
  checkPostgresDeadLetterStoreOptions(options);
  const base = await open(options, 'dead-letter store');
  const { pool, s } = base;
  const revive = (rows: { record: string }[]) => rows.map((row) => deadLetterFromJson(row.record));
  return {
    pool,
    async add(record: DeadLetter) {
      await base.query(
        'dead-letter-add',
        `INSERT INTO ${s}.dead_letters
           (id, consumer, topic, message_id, message_type, error_type, error_message, dead_lettered_at, state, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json)
         ON CONFLICT DO NOTHING`,
        [
          record.id,
          record.consumer,
          record.topic,
          record.message.id,
          record.message.type,
          record.error.type,
          record.error.message,
          record.deadLetteredAt,
          record.state,
          deadLetterToJson(record),
        ],
      );
    },
    async list(filter: DeadLetterFilter = {}) {
      // One statement for every filter: a condition whose parameter is null is true.
      const { rows } = await base.query<{ record: string }>(
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
        [
          filter.state ?? 'dead',
          filter.consumer ?? null,
          filter.topic ?? null,
          filter.type ?? null,
          filter.error ?? null,
          filter.since ?? null,
          filter.until ?? null,
        ],
      );
      return revive(rows);
    },
    async get(id) {
      const { rows } = await base.query<{ record: string }>(
        'dead-letter-get',
        `SELECT record::text AS record FROM ${s}.dead_letters WHERE id = $1`,
        [id],
      );
      return revive(rows)[0];
    },
    async update(record) {
      await base.query(
        'dead-letter-update',
        `UPDATE ${s}.dead_letters SET state = $1, record = $2::json WHERE id = $3`,
        [record.state, deadLetterToJson(record), record.id],
      );
    },
    close: base.close,
  };
}
