import { type Inbox, StorageError, StoreClosedError, ValidationError } from '@factline/core';
import { assertIntegerOption, inCallerScope, isStorableText } from '@factline/core/adapter';
import type pg from 'pg';
import { checkOutHeld } from '../checkout.ts';
import { checkPostgresInboxOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { withClientHandle } from '../transaction-handle.ts';
import { ackInTransactionOf } from './ack-in-transaction.ts';
import { beginWith } from './begin-with.ts';
import { openConsumerTables, type PostgresConsumerStoreOptions } from './postgres-consumer-tables.ts';
import { createInboxGroups, type InboxMember, releaseClient } from './postgres-inbox-groups.ts';

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
  /** Most handler runs in one group. Default 64. Only with `groupCommit: true` (else a `ValidationError`). */
  maxGroup?: number;
  /**
   * Group transactions open at once, each on a connection of its own: while
   * one group runs, the runs arriving meanwhile form the next. Default 2.
   * Only with `groupCommit: true` (else a `ValidationError`).
   */
  maxGroups?: number;
}

/**
 * A `ValidationError` for a mark PostgreSQL's text cannot hold (a message id with a NUL or a lone surrogate,
 * written into a broker by another program), before any statement; `undefined` for one it can.
 */
function unstorableMark(consumer: string, messageId: string): ValidationError | undefined {
  for (const [path, value] of [
    ['messageId', messageId],
    ['consumer', consumer],
  ] as const) {
    if (isStorableText(value)) continue;
    return new ValidationError({
      path,
      message: `${JSON.stringify(value)} holds a NUL or a lone surrogate, which PostgreSQL's text cannot hold: the PostgreSQL inbox cannot keep its mark, so the message is not applied`,
    });
  }
  return undefined;
}

export interface PostgresInbox extends Inbox<pg.PoolClient> {
  readonly pool: pg.Pool;
  /** Ends the pool if the inbox opened it. */
  close(): Promise<void>;
}

/**
 * A consumer inbox in PostgreSQL (migration component `consumer`). With it,
 * `createConsumer` runs each handler inside one transaction on a pool client
 * that first writes the inbox mark, and passes the handler that client: rows
 * it writes through it commit together with the mark, so a message is applied
 * once even when the process dies between the handler and the ack. Two
 * consumers handed the same message at once cannot both apply it: the second
 * mark waits for the first transaction and, when it commits, finds the
 * duplicate. A message whose id holds a NUL or a lone surrogate (written
 * into a broker by another program; PostgreSQL's text holds neither) is
 * refused with a `ValidationError` before any statement: its handler does
 * not run, and the consumer dead-letters it as it would a handler's failure
 * that is not retryable.
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
  const tables = await openConsumerTables(options, 'inbox');
  const { pool, s, schema } = tables;
  const MARK = `INSERT INTO ${s}.inbox (consumer, message_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`;
  /**
   * The mark, and with a delivery of a transport on this pool its ack, in one
   * statement (one round trip). Both are undone with the transaction or
   * savepoint when the handler fails; a duplicate keeps the ack.
   */
  const markQuery = (member: InboxMember): pg.QueryConfig => {
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

  /** One transaction per message. */
  const applyAlone = async (member: InboxMember): Promise<boolean> => {
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

  const groups = createInboxGroups({ pool, schema, s, maxGroup, maxGroups, applyAlone });

  return {
    pool,
    has: async (consumer, id) => {
      const refused = unstorableMark(consumer, id);
      if (refused) throw refused;
      const found = await tables.query('has', `SELECT 1 FROM ${s}.inbox WHERE consumer = $1 AND message_id = $2`, [
        consumer,
        id,
      ]);
      return found.rowCount !== 0;
    },
    add: async (consumer, id, at) => {
      const refused = unstorableMark(consumer, id);
      if (refused) throw refused;
      await tables.query('mark', MARK, [consumer, id, at]);
    },
    prune: async (before, consumer) => {
      await tables.query('prune', `DELETE FROM ${s}.inbox WHERE consumer = $1 AND at < $2`, [consumer, before]);
    },
    applyOnce(consumer, id, at, work, delivery) {
      if (tables.closed()) return Promise.reject(new StoreClosedError('inbox'));
      // Refused before its run joins a group: no statement of a group meets it.
      const refused = unstorableMark(consumer, id);
      if (refused) return Promise.reject(refused);
      // The transport's delivery, when it lives in this pool's database, is acked in the same transaction.
      const ack = ackInTransactionOf(delivery);
      const ackHere = ack?.pool === pool ? ack : undefined;
      return new Promise<boolean>((resolve, reject) => {
        if (!groupCommit) {
          applyAlone({ consumer, id, at, work, ack: ackHere, resolve, reject }).then(resolve, reject);
          return;
        }
        // A group runs its handlers from whichever run started it: each keeps its own caller's async
        // context (its delivery's span, the caller's async-local stores).
        groups.apply({
          consumer,
          id,
          at,
          ack: ackHere,
          ...inCallerScope<pg.PoolClient, boolean>({ work, resolve, reject }),
        });
      });
    },
    close: tables.close,
  };
}
