import { type Inbox, StoreClosedError, ValidationError } from '@factline/core';
import { assertIntegerOption, inCallerScope, isPromiseLike } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { checkSqliteInboxOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { withTransactionHandle } from '../transaction-handle.ts';
import { shareWriteLock } from '../write-share.ts';
import { type AckInTransaction, ackInTransactionOf } from './ack-in-transaction.ts';
import { guardConsumerStore, openConsumerTables, type SqliteConsumerStoreOptions } from './sqlite-consumer-tables.ts';

export interface SqliteInboxOptions extends SqliteConsumerStoreOptions {
  /**
   * Group commit (default true): handler runs that arrive together (other
   * keys, other consumers on this inbox) share one transaction, each inside a
   * savepoint of its own, so one commit (one fsync) covers them all. A handler
   * that throws rolls back its own savepoint only. Each caller learns its
   * outcome once the shared commit is done; the runs those commits let
   * through (each key lane's next message) commit right after, in the same
   * turn of the event loop (for up to `chainBudgetMs`), not a turn later. A consumer
   * lets another key start while a lane's run waits for the group's commit,
   * so a group holds more runs than the consumer has lanes. `false`: one
   * transaction per message.
   */
  groupCommit?: boolean;
  /** Most handler runs in one group commit. Default 256. */
  maxGroup?: number;
  /**
   * How long group commits may follow one another within one turn of the
   * event loop before sockets and timers get their turn, ms. Default 10;
   * 0: each group waits for a turn of its own.
   */
  chainBudgetMs?: number;
  /**
   * How long this connection's transactions (group commits, the SQLite
   * transport's claims on it) may hold the file's write lock back to back,
   * working through a backlog, before the next group waits until the lock
   * has been free for 150 ms, so that a write from another process waiting
   * on it (`factline dlq redrive`, another service's append) gets in before
   * its busy timeout, ms; a group that reaches it commits with the runs it
   * has, and the rest go into the next group. A consumer that leaves the
   * lock free at least as long as it holds it (live, between messages)
   * never waits. Default 1000; keep it, plus the longest handler run, below
   * the busy timeout of the other processes writing to the file.
   */
  maxWriteHoldMs?: number;
}

interface Member {
  consumer: string;
  id: string;
  at: number;
  work: (tx: Database) => unknown;
  ack: AckInTransaction | undefined;
  resolve: (applied: boolean) => void;
  reject: (error: unknown) => void;
}

type Outcome = { applied: boolean } | { error: unknown; fromHandler: boolean };

/**
 * A consumer inbox in the SQLite file (migration component `consumer`). With
 * it, `createConsumer` runs each handler inside an IMMEDIATE transaction that
 * first writes the inbox mark, and passes the handler the connection: rows
 * the handler writes through it commit together with the mark, so a message
 * is applied once even when the process dies between the handler and the ack.
 * The handler gets a handle on the connection that refuses every statement
 * (a `ValidationError` at `tx`) once its transaction ended, so nothing it
 * writes can escape the transaction. The handler must be synchronous
 * (better-sqlite3 transactions are): one that returns a promise fails with a
 * `ValidationError`, and what it tries to write after an `await` is refused. With
 * `groupCommit` (the default), runs that arrive together share a commit.
 *
 * @example
 * const consumer = createConsumer({
 *   name: 'billing', topic: 'orders', transport,
 *   inbox: getSqliteInbox({ database: db }),
 *   handler: (message, db) => {
 *     db.prepare('INSERT INTO invoices (order_id) VALUES (?)').run(message.key);
 *   },
 * });
 */
export function getSqliteInbox(options: SqliteInboxOptions): Inbox<Database> {
  checkSqliteInboxOptions(options);
  const db = openConsumerTables(options);
  const groupCommit = options.groupCommit ?? true;
  const maxGroup = assertIntegerOption(options.maxGroup, 'maxGroup', 1) ?? 256;
  const chainBudgetMs = assertIntegerOption(options.chainBudgetMs, 'chainBudgetMs', 0) ?? CHAIN_BUDGET_MS;
  // Counted with the other writes of this connection (the SQLite transport's claims, projection batches).
  const share = shareWriteLock(db, { maxHoldMs: options.maxWriteHoldMs });
  const has = db.prepare<[string, string]>('SELECT 1 FROM factline_inbox WHERE consumer = ? AND message_id = ?');
  const mark = db.prepare<[string, string, number]>(
    'INSERT OR IGNORE INTO factline_inbox (consumer, message_id, at) VALUES (?, ?, ?)',
  );
  const prune = db.prepare<[string, number]>('DELETE FROM factline_inbox WHERE consumer = ? AND at < ?');

  /** One message: a savepoint when nested in a group's transaction. Throws `{ handler: error }` for the handler's errors. */
  const one = db.transaction((member: Member): boolean => {
    if (mark.run(member.consumer, member.id, member.at).changes === 0) return false;
    let result: unknown;
    try {
      // A handle of its own, ended with its savepoint: nothing written through it later can land.
      result = withTransactionHandle(db, member.work, 'an inbox handler');
    } catch (error) {
      throw new HandlerFailure(error);
    }
    if (isPromiseLike(result)) {
      throw new HandlerFailure(
        new ValidationError({
          path: 'handler',
          message:
            'returned a promise: with the SQLite inbox the handler runs inside a synchronous transaction and must not be async',
        }),
      );
    }
    member.ack?.run();
    return true;
  });

  const attempt = (member: Member): Outcome => {
    try {
      return { applied: one(member) };
    } catch (error) {
      if (error instanceof HandlerFailure) return { error: error.error, fromHandler: true };
      return { error, fromHandler: false };
    }
  };

  /**
   * Runs `members` in one transaction, savepoint each, and commits once the
   * connection's transactions have held the write lock `maxWriteHoldMs` (at
   * least one run): the outcomes of the runs done, the first of `members`.
   */
  const group = db.transaction((members: Member[]) => {
    const outcomes: Outcome[] = [];
    for (const member of members) {
      if (outcomes.length > 0 && share.holdLeft() <= 0) break;
      outcomes.push(attempt(member));
    }
    return outcomes;
  });
  /** Runs a group and settles each caller after the commit; returns the members it left for the next group. */
  const runGroup = (members: Member[]): Member[] => {
    let outcomes: Outcome[];
    try {
      if (!db.open) throw new StoreClosedError('inbox');
      outcomes = share.write(() => group.immediate(members));
    } catch (error) {
      // BEGIN or COMMIT failed: nothing of the group was written.
      const failure = toStorageError(error);
      for (const member of members) member.reject(failure);
      return [];
    }
    members.slice(0, outcomes.length).forEach((member, i) => {
      const outcome = outcomes[i] as Outcome;
      if ('applied' in outcome) {
        if (outcome.applied) member.ack?.committed();
        member.resolve(outcome.applied);
      } else {
        // The handler's own errors go to the retry policy as they are.
        member.reject(outcome.fromHandler ? outcome.error : toStorageError(outcome.error));
      }
    });
    return members.slice(outcomes.length);
  };

  /**
   * Runs `work` now, or, while this connection's transactions have held the write lock back to back
   * for `maxWriteHoldMs`, once the lock has been free long enough for another process's write (`write-share.ts`).
   */
  const whenShared = (work: () => void) => {
    const pause = share.pauseLeft();
    if (pause <= 0) return work();
    setTimeout(() => whenShared(work), Math.ceil(pause));
  };

  let queue: Member[] = [];
  let scheduled = false;
  /** From a flush until the microtasks after it drained: runs arriving meanwhile wait for `afterDrain`. */
  let draining = false;
  /** When the flushes chained in this turn of the event loop began. */
  let chainStarted = 0;
  const flush = () => {
    scheduled = false;
    while (queue.length > 0) {
      if (share.pauseLeft() > 0) {
        // The lock was held back to back for maxWriteHoldMs: the queue waits, and what arrives joins it.
        scheduled = true;
        whenShared(() => {
          chainStarted = performance.now();
          flush();
        });
        return;
      }
      const members = queue.slice(0, maxGroup);
      const rest = runGroup(members);
      queue = [...rest, ...queue.slice(members.length)];
    }
    // The commits just settled let each key lane's next run through in the microtasks that follow:
    // those commit together right after, in this turn, not one turn of the event loop later.
    draining = true;
    queueMicrotask(() => process.nextTick(afterDrain));
  };
  /** After the microtasks that followed a flush (a tick queued from a microtask waits for all of them). */
  const afterDrain = () => {
    draining = false;
    if (queue.length === 0) return;
    // Within a budget, so sockets and timers are not starved: then the next turn, as any run.
    if (performance.now() - chainStarted < chainBudgetMs) flush();
    else schedule();
  };
  const schedule = () => {
    if (scheduled || draining) return;
    scheduled = true;
    // Runs arriving in this turn of the event loop (other lanes, other consumers) join the group.
    setImmediate(() => {
      chainStarted = performance.now();
      flush();
    });
  };

  return {
    has: async (consumer, id) => guardConsumerStore(db, () => has.get(consumer, id) !== undefined, 'inbox'),
    add: async (consumer, id, at) => {
      guardConsumerStore(db, () => mark.run(consumer, id, at.getTime()), 'inbox');
    },
    prune: async (before, consumer) => {
      guardConsumerStore(db, () => prune.run(consumer, before.getTime()), 'inbox');
    },
    applyOnce(consumer, id, at, work, delivery, queued) {
      if (!db.open) return Promise.reject(new StoreClosedError('inbox'));
      // The transport's delivery, when it lives on this connection, is acked in the same transaction.
      const ack = ackInTransactionOf(delivery);
      const ackHere = ack?.database === db ? ack : undefined;
      return new Promise<boolean>((resolve, reject) => {
        if (!groupCommit) {
          const member: Member = { consumer, id, at: at.getTime(), work, ack: ackHere, resolve, reject };
          return whenShared(() => runGroup([member]));
        }
        // The group runs at a later turn, from whichever run started it: each handler keeps its own
        // caller's async context (its delivery's span, the caller's async-local stores).
        const member: Member = {
          consumer,
          id,
          at: at.getTime(),
          ack: ackHere,
          ...inCallerScope<Database, boolean>({ work, resolve, reject }),
        };
        queue.push(member);
        schedule();
        // It waits for the group's commit: its consumer may start another key's run, to join the same group.
        queued?.();
      });
    },
  };
}

/** How long flushes may chain within one turn of the event loop before others get their turn (default). */
const CHAIN_BUDGET_MS = 10;

/** Carries a handler's error out of the savepoint, told apart from the inbox's own failures. */
class HandlerFailure {
  constructor(readonly error: unknown) {}
}
