import type { Subscription } from '@factline/core';
import { createQueueSubscription, type LeasedRow, type ReceiveWakeups } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { type AckInTransaction, ackInTransaction } from './ack-in-transaction.ts';
import type { Claim, ClaimedRow } from './sqlite-claim.ts';
import type { QueueStatements } from './sqlite-queue-statements.ts';

/** What a subscription works with: the transport's connection, statements, clock and wake-ups. */
export interface SqliteQueue {
  db: Database;
  statements: QueueStatements;
  claim: { immediate: Claim };
  now: () => number;
  /** How often a waiting receive looks for rows written by other processes. */
  pollInterval: number;
  /** Per group: `groupChannel(topic, group)`. */
  wakeups: ReceiveWakeups;
  closed(): boolean;
  /** Runs a statement: `StoreClosedError` once closed, storage errors as `StorageError`. */
  run<T>(work: () => T): T;
}

/** The wake-up channel of a group: its receivers in this process, woken by this transport's writes. */
export const groupChannel = (topic: string, group: string): string => `${topic}\u0000${group}`;

/**
 * A subscription of `group` to `topic` (declared already): each `receive`
 * claims due rows (`sqlite-claim.ts`) and, while none are, sleeps until the
 * next row is due, a poll interval, a wake-up or the abort.
 */
export function openSqliteSubscription(
  queue: SqliteQueue,
  topic: string,
  group: string,
  visibility: number,
): Subscription {
  const { statements, now, run } = queue;

  const leasedRow = ({ seq, lease }: ClaimedRow): LeasedRow => ({
    ack: () => {
      run(() => statements.ack.run(seq, lease));
    },
    release: (delayMs) => run(() => statements.release.run(now() + delayMs, seq, lease)).changes > 0,
    extend: (ms) => {
      run(() => statements.extend.run(now() + ms, seq, lease));
    },
  });

  /** The ack an SQLite inbox on this connection runs inside its transaction. */
  const ackHere = ({ seq, lease }: ClaimedRow, committed: () => void): AckInTransaction => ({
    database: queue.db,
    run: () => {
      statements.ack.run(seq, lease);
    },
    committed,
  });

  return createQueueSubscription({
    wakeups: queue.wakeups,
    channel: groupChannel(topic, group),
    closed: queue.closed,
    take: (max) =>
      // A transaction open on the connection now was begun by hand and left open across an await (a
      // receive never runs inside Factline's synchronous ones): a claim would join it, and its rollback would
      // undo the hand-out while this process holds the messages, freeing their key for another subscriber.
      // Nothing is claimed until it ended; the receive waits and looks again.
      (queue.db.inTransaction ? [] : run(() => queue.claim.immediate(topic, group, max, visibility))).map((row) => ({
        message: row.message,
        deliveryCount: row.deliveryCount,
        row: leasedRow(row),
        extra: (committed) => ({ [ackInTransaction]: ackHere(row, committed) }),
      })),
    // Until the next row of the group is due, or a poll interval: other processes' writes wake no one here.
    pause: (left) => {
      const next = run(() => statements.nextDue.get({ topic, group, at: now() }))?.next;
      const untilDue = next == null ? Number.POSITIVE_INFINITY : Math.max(1, next - now());
      return Math.min(left, queue.pollInterval, untilDue);
    },
  });
}
