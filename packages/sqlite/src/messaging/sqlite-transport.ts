import { StoreClosedError, type Transport, ValidationError } from '@factline/core';
import { createQueueTransport, createReceiveWakeups } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { migrate } from '../migrations.ts';
import { checkSqliteTransportOptions, connectionOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { openSqliteDatabase } from '../store/sqlite-event-store.ts';
import { prepareClaim } from './sqlite-claim.ts';
import { getSqliteDeadLetterStore } from './sqlite-dead-letters.ts';
import { prepareQueueStatements } from './sqlite-queue-statements.ts';
import { groupChannel, openSqliteSubscription, type SqliteQueue } from './sqlite-subscriptions.ts';
import { transportMigrations } from './sqlite-transport-migrations.ts';

export interface SqliteTransportOptions {
  /** A connection to share (e.g. an event store's `.database`); the transport does not close it. */
  database?: Database;
  /** Or a file to open (WAL, busy timeout); closed with the transport. */
  path?: string;
  /** For a file the transport opens: `'full'` (default) or `'normal'`. */
  synchronous?: 'full' | 'normal';
  /** For a file the transport opens: how long a write waits for another process's lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * How often a waiting `receive` looks at the table for messages written by
   * other processes: a whole number from 1 to 2147483647 (a timer's limit).
   * Default 100 ms. Publishes through this transport object wake its
   * receivers at once.
   */
  pollIntervalMs?: number;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

export interface SqliteTransport extends Transport {
  /** The better-sqlite3 connection the transport uses. */
  readonly database: Database;
}

/**
 * A durable transport in SQLite tables, for processes sharing one file:
 * fan-out to every group of a topic, competing consumers within a group
 * (SQLite serializes writers, so a row is leased to one receiver at a time),
 * delayed delivery, visibility timeouts. The messages of one key go to one
 * subscription at a time, in seq order, across processes (see `CLAIM_SQL`).
 * A group receives what is published after its subscription was declared
 * (`declareSubscription` or its first `subscribe`, a row of
 * `factline_transport_groups`), and keeps it while no consumer runs.
 *
 * @example
 * const transport = getSqliteTransport({ path: 'app.db' });
 * await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
 */
export function getSqliteTransport(options: SqliteTransportOptions): SqliteTransport {
  checkSqliteTransportOptions(options);
  if (options?.database === undefined && typeof options?.path !== 'string') {
    throw new ValidationError({ path: 'path', message: 'give a database connection or a file path' });
  }
  if (options.database !== undefined) {
    // Settings of a connection this transport would open: with one given, they would do nothing.
    const unused = (['path', 'busyTimeoutMs', 'synchronous'] as const).filter((name) => options[name] !== undefined);
    if (unused.length > 0) {
      throw new ValidationError(
        unused.map((name) => ({
          path: `getSqliteTransport.${name}`,
          message:
            'is for a connection the transport opens: with `database` given it would do nothing (set it on that connection)',
        })),
      );
    }
  }
  const owned = options.database === undefined;
  const db = options.database ?? openSqliteDatabase(options.path as string, connectionOptions(options));
  try {
    migrate(db, 'transport', transportMigrations);
  } catch (error) {
    if (owned) db.close();
    throw toStorageError(error);
  }

  let closed = false;
  const queue: SqliteQueue = {
    db,
    statements: prepareQueueStatements(db),
    claim: prepareClaim(db, options.now ?? Date.now),
    now: options.now ?? Date.now,
    pollInterval: Math.max(1, options.pollIntervalMs ?? 100),
    wakeups: createReceiveWakeups(),
    closed: () => closed,
    run(work) {
      if (closed) throw new StoreClosedError('transport');
      try {
        return work();
      } catch (error) {
        throw toStorageError(error);
      }
    },
  };
  const { statements, wakeups, run, now } = queue;

  return createQueueTransport(
    {
      // A key's earliest row, while not visible, keeps the key from every claim.
      delayedReleaseHoldsKey: true,
      isClosed: () => closed,
      publish(topic, messages, required) {
        const groups = run(() => statements.publish.immediate(topic, messages, required));
        for (const group of groups) wakeups.wake(groupChannel(topic, group));
      },
      redeliver(topic, group, messages) {
        run(() => statements.redeliver.immediate(topic, group, messages, now()));
        wakeups.wake(groupChannel(topic, group));
      },
      declare(topic, group) {
        run(() => statements.addGroup.run(topic, group, now()));
      },
      subscribe(topic, group, visibility) {
        run(() => statements.addGroup.run(topic, group, now()));
        return openSqliteSubscription(queue, topic, group, visibility);
      },
      backlog(topic, group) {
        const row = run(() => statements.backlog.get(topic, group, topic, group)) as {
          messages: number;
          oldest: string | null;
        };
        return { messages: row.messages, oldestAt: row.oldest === null ? undefined : Date.parse(row.oldest) };
      },
      deadLetterStore: () => getSqliteDeadLetterStore({ database: db }),
      close() {
        closed = true;
        wakeups.stop();
        if (owned) db.close();
      },
    },
    { database: db, system: 'sqlite' },
  );
}
