import type { Subscription } from '@factline/core';
import { createQueueSubscription, type LeasedRow, type ReceiveWakeups } from '@factline/core/adapter';
import type pg from 'pg';
import type { ChannelListener } from '../channel-listener.ts';
import { type AckInTransaction, ackInTransaction } from './ack-in-transaction.ts';
import { claim, type QueueQuery } from './postgres-claim.ts';
import type { QueueStatements } from './postgres-queue-statements.ts';
import { notifyPayload } from './postgres-wake-ups.ts';

/** What a subscription works with: the transport's pool, statements, wake-ups and group registrations. */
export interface PostgresQueue {
  pool: pg.Pool;
  /** The quoted schema. */
  s: string;
  statements: QueueStatements;
  query: QueueQuery;
  /** Per topic; a notification heard wakes its topic, a reconnect every topic. */
  wakeups: ReceiveWakeups;
  /** The NOTIFY channel of the schema's transport. */
  channel: string;
  /** Undefined with `listen: false`. */
  listener: ChannelListener | undefined;
  /** Opens the LISTEN connection (once). */
  startListening(): void;
  pollIntervalMs: number;
  /** Registers the group of the topic (memoised; a failure is tried again on the next call). */
  register(topic: string, group: string): Promise<void>;
  closed(): boolean;
}

/**
 * A subscription of `group` to `topic`: each `receive` registers the group,
 * claims due rows (`postgres-claim.ts`) and, while none are, waits until the
 * next row not visible yet is due, a notification, a wake-up from this
 * process, or the abort; without a LISTEN connection at most the poll interval.
 */
export function openPostgresSubscription(
  queue: PostgresQueue,
  topic: string,
  group: string,
  visibility: number,
): Subscription {
  const { query, statements } = queue;

  const leasedRow = (values: [string, string, string, string]): LeasedRow => ({
    ack: async () => {
      await query('ack', statements.ACK, values);
    },
    release: async (delayMs) => {
      const notified = await query('release', statements.RELEASE, [
        ...values,
        delayMs,
        queue.channel,
        notifyPayload(topic),
      ]);
      return notified.length > 0;
    },
    extend: async (ms) => {
      await query('extend', statements.EXTEND, [...values, ms]);
    },
  });

  const nextDue = async (): Promise<number> => {
    const rows = await query<{ ms: number | null }>('next-due', statements.NEXT_DUE, [topic, group]);
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? Number.POSITIVE_INFINITY : ms;
  };

  return createQueueSubscription({
    wakeups: queue.wakeups,
    channel: topic,
    closed: queue.closed,
    prepare: async (waitMs) => {
      await queue.register(topic, group);
      if (waitMs > 0) queue.startListening();
    },
    take: async (max) =>
      (await claim(query, statements.CLAIM, topic, group, max, visibility)).map((row) => {
        const values: [string, string, string, string] = [topic, group, row.seq, row.lease];
        return {
          message: row.message,
          deliveryCount: row.delivery_count,
          row: leasedRow(values),
          // The ack a PostgreSQL inbox on this pool runs inside its transaction.
          extra: (committed) => {
            const inTransaction: AckInTransaction = { pool: queue.pool, schema: queue.s, values, committed };
            return { [ackInTransaction]: inTransaction };
          },
        };
      }),
    // Until the next row not visible yet is due; a key freed meanwhile wakes this process's receivers.
    pause: async (left) => {
      const pause = Math.min(left, Math.max(5, Math.ceil(await nextDue())));
      return queue.listener?.listening ? pause : Math.min(pause, queue.pollIntervalMs);
    },
    // The database unreachable (restart, network): the error is reported once the caller's wait, at
    // most the poll interval, passed.
    retryPauseMs: queue.pollIntervalMs,
  });
}
