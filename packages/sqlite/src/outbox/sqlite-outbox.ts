import { resolve } from 'node:path';
import {
  type Message,
  type MessageInput,
  type OutboxRelayStats,
  type SchemaRegistry,
  StorageError,
  type Transport,
  ValidationError,
} from '@factline/core';
import {
  assertName,
  encodeMessagesNow,
  messageFromJson,
  type Outbox,
  type OutboxRelayOptions,
  prepareMessages,
  startOutboxRelay,
} from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { createSqliteLeases, leaseTimings } from '../lease.ts';
import { type Migration, migrate } from '../migrations.ts';
import { checkSqliteOutboxOptions, checkSqliteOutboxRelayOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';
import { connectionOf } from '../transaction-handle.ts';

/** The outbox table: messages written in the application's transactions, deleted once published. */
export const outboxMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'transactional outbox',
    up: `
      CREATE TABLE factline_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        message TEXT NOT NULL CHECK (json_valid(message)),
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'outbox entries by correlation id, for traceOperation',
    up: `
      CREATE INDEX factline_outbox_correlation ON factline_outbox (json_extract(message, '$.metadata.correlationId'));
    `,
  },
];

export interface SqliteOutboxOptions {
  /** The application's better-sqlite3 connection (the outbox never closes it). */
  database: Database;
  /** Clock for `created_at`; defaults to `Date.now`. */
  now?: () => number;
  /**
   * The application's message types: `enqueue` validates each message of a
   * defined type before writing anything, and stamps its
   * `factline-schema-version` header (core's `encodeMessages`). The enqueue
   * is synchronous: a type with an asynchronous validator is refused (encode
   * such messages before the transaction with `encodeMessages`).
   */
  schemas?: SchemaRegistry;
}

export interface SqliteOutbox {
  readonly database: Database;
  /**
   * Writes `messages` to the outbox on `db`, synchronously, inside the
   * caller's open transaction (`db.transaction(...)`): they are published only
   * if that transaction commits. Inputs without an id get one (UUIDv7).
   * Returns the messages as they will be published.
   */
  enqueue(db: Database, topic: string, messages: readonly (Message | MessageInput)[]): Message[];
  /** Rows waiting to be published. */
  pending(): number;
  /** @internal Called by relays to be woken when an enqueue may have committed. */
  onEnqueue(listener: () => void): () => void;
}

export interface SqliteOutboxRelayOptions extends OutboxRelayOptions {
  /**
   * How long a take or renewal of the relay's lease (`factline_leases` row
   * `outbox`) lasts, ms. Default 5000: five renewals, so a holder stalled for a
   * few seconds (a busy file, a long synchronous task) keeps it, and a
   * crashed holder is replaced within about six seconds.
   */
  leaseTtlMs?: number;
  /**
   * How often the holder renews its lease and a relay standing by tries to
   * take it, ms; less than `leaseTtlMs`. Default 1000 (a fifth of `leaseTtlMs`
   * when that is shorter).
   */
  leaseCheckMs?: number;
  /**
   * `false`: no lease, this relay always publishes (one process per file, or
   * another way of keeping one relay). Default `true`.
   */
  lease?: boolean;
}

/** What the relay reports about itself (the same on every adapter). */
export type SqliteOutboxRelayStats = OutboxRelayStats;

export interface SqliteOutboxRelay {
  /** Resolves once the first lease check ran: the relay then holds the lease or stands by. */
  ready(): Promise<void>;
  /** Stops after the publish in flight and gives up the lease. */
  stop(): Promise<void>;
  stats(): SqliteOutboxRelayStats;
}

interface OutboxRow {
  seq: number;
  topic: string;
  message: string;
}

/** A clear error for a connection whose database has no outbox table; `undefined` for any other failure. */
function missingOutboxError(error: unknown): StorageError | undefined {
  if (!/no such table: factline_outbox\b/.test((error as Error)?.message ?? '')) return undefined;
  return new StorageError(
    "The outbox's table (factline_outbox) is missing in the database of the connection given to enqueue: " +
      'create it with getSqliteOutbox({ database }) on that database (it runs the outbox migrations), ' +
      'and enqueue on a connection to the file the relay reads',
    { cause: error, retryable: false },
  );
}

/** Accepts built messages as they are, and builds the others (inheriting the handled message's correlation). */
export const toOutboxMessages = prepareMessages;
const revive = messageFromJson;

/**
 * A transactional outbox in the application's SQLite file, for state-based
 * services: the application writes its rows and the messages to publish in
 * one transaction of its own (`outbox.enqueue(db, …)` inside
 * `db.transaction(...)`), and a relay (`startSqliteOutboxRelay`) publishes
 * them afterwards, at least once, in outbox order. A rolled-back
 * transaction's messages never exist, so they are never published.
 *
 * @example
 * const outbox = getSqliteOutbox({ database: db });
 * db.transaction(() => {
 *   db.prepare('INSERT INTO orders (id) VALUES (?)').run('o-1');
 *   outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]);
 * })();
 * const relay = startSqliteOutboxRelay(outbox, transport);
 */
export function getSqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  checkSqliteOutboxOptions(options);
  const database = options?.database;
  if (database === undefined || typeof database?.prepare !== 'function') {
    throw new ValidationError({ path: 'database', message: 'must be a better-sqlite3 Database' });
  }
  const now = options.now ?? Date.now;
  try {
    migrate(database, 'outbox', outboxMigrations);
  } catch (error) {
    throw toStorageError(error);
  }
  // Statements belong to one connection: prepared per connection enqueue is given.
  const inserts = new WeakMap<Database, (topic: string, rows: readonly Message[], at: number) => void>();
  /** The batch's inserts on `db`, in a savepoint of the caller's transaction: all of them or none. */
  const insertOn = (db: Database) => {
    let insert = inserts.get(db);
    if (!insert) {
      const statement = db.prepare<[string, string, string, string, number]>(
        'INSERT INTO factline_outbox (topic, message_id, key, message, created_at) VALUES (?, ?, ?, ?, ?)',
      );
      insert = db.transaction((topic: string, rows: readonly Message[], at: number) => {
        for (const message of rows) statement.run(topic, message.id, message.key, JSON.stringify(message), at);
      });
      inserts.set(db, insert);
    }
    return insert;
  };
  const count = database.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM factline_outbox');
  const listeners = new Set<() => void>();

  return {
    database,
    enqueue(given, topic, messages) {
      if (given === undefined || typeof given?.prepare !== 'function') {
        throw new ValidationError({ path: 'db', message: 'must be a better-sqlite3 Database' });
      }
      // A handler's transaction handle stands for its connection (and is refused once its transaction ended).
      const db = connectionOf(given);
      if (!db.inTransaction) {
        throw new ValidationError({
          path: 'db',
          message: "no transaction is open: call enqueue inside the transaction that writes the application's rows",
        });
      }
      assertName(topic, 'topic');
      const built = options.schemas
        ? encodeMessagesNow(options.schemas, messages, now)
        : toOutboxMessages(messages, now);
      const at = now();
      try {
        insertOn(db)(topic, built, at);
      } catch (error) {
        throw missingOutboxError(error) ?? toStorageError(error);
      }
      // better-sqlite3 transactions are synchronous: by the next microtask this
      // one has committed (the relay finds the rows) or rolled back (it finds none).
      if (listeners.size > 0) {
        queueMicrotask(() => {
          for (const listener of listeners) listener();
        });
      }
      return built;
    },
    pending: () => count.get()?.n ?? 0,
    onEnqueue(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}

/**
 * Publishes the outbox's rows to `transport`, in one process at a time: the
 * relay holding the lease, a row of `factline_leases` (named `outbox`, one per
 * file) that lasts `leaseTtlMs`. The holder renews it every `leaseCheckMs`;
 * other relays on the file stand by and try to take it as often, so one takes
 * over at its next check after the holder stops (which deletes the row), or
 * after the lease expired when the holder crashed or froze.
 *
 * The holder reads up to `batchSize` rows, oldest first, publishes each run of
 * consecutive rows of one topic in outbox order, and deletes those rows only
 * once their publish resolved: a crash or failure in between publishes them
 * again (at least once; consumers' inboxes drop the repeats by message id).
 * Before every publish it checks that its lease has not expired by its own
 * clock, and stands by when it has (a renewal failed, or the process froze);
 * so a holder frozen for longer than the TTL in the middle of a publish may
 * overlap with its successor for that one batch, which is at least once too.
 */
export function startSqliteOutboxRelay(
  outbox: SqliteOutbox,
  transport: Transport,
  options: SqliteOutboxRelayOptions = {},
): SqliteOutboxRelay {
  checkSqliteOutboxRelayOptions(options);
  if (!outbox?.database || typeof transport?.publish !== 'function') {
    throw new ValidationError({ path: 'relay', message: 'needs an outbox and a transport' });
  }
  const { ttlMs, checkMs } = leaseTimings(options);
  const leases = options.lease === false ? undefined : createSqliteLeases({ database: outbox.database, ttlMs });
  const { lease: _lease, leaseTtlMs: _ttl, leaseCheckMs: _check, ...relayOptions } = options;
  return startOutboxRelay(sqliteOutboxRows(outbox), transport, {
    ...relayOptions,
    lease: leases?.lease('outbox'),
    leaseCheckMs: checkMs,
    close: leases?.close,
  });
}

/** Core's `Outbox` port on `factline_outbox`: the relay's statements. */
function sqliteOutboxRows(outbox: SqliteOutbox): Outbox {
  const db = outbox.database;
  const read = db.prepare<[number], OutboxRow>('SELECT seq, topic, message FROM factline_outbox ORDER BY seq LIMIT ?');
  const readSkipping = db.prepare<[string, number], OutboxRow>(
    `SELECT seq, topic, message FROM factline_outbox
     WHERE topic NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?`,
  );
  const remove = db.prepare<[number]>('DELETE FROM factline_outbox WHERE seq = ?');
  const backlog = db.prepare<[], { rows: number; oldestAt: number | null }>(
    'SELECT COUNT(*) AS rows, MIN(created_at) AS oldestAt FROM factline_outbox',
  );
  const removeAll = db.transaction((seqs: readonly number[]) => {
    for (const seq of seqs) remove.run(seq);
  });
  /**
   * The relay runs between the application's turns, so a transaction open on the connection now was left
   * open across an `await` (a `BEGIN` by hand): its rows may yet roll back, and a statement of the relay would
   * join it. The relay neither reads (nothing is published until it ends; `undefined` says the read did not
   * happen, so no held topic is taken for gone) nor deletes then.
   */
  const foreignTransaction = () => db.inTransaction;
  return {
    // A file's relays on other connections read the same table; an in-memory database is its connection's own.
    table: db.memory ? db : `sqlite:${resolve(db.name)}`,
    async read(limit, skipTopics) {
      if (foreignTransaction()) return undefined;
      try {
        const rows = skipTopics.length === 0 ? read.all(limit) : readSkipping.all(JSON.stringify(skipTopics), limit);
        return rows.map((row) => ({ seq: row.seq, topic: row.topic, message: revive(row.message) }));
      } catch (error) {
        throw toStorageError(error);
      }
    },
    async remove(seqs) {
      if (foreignTransaction()) {
        // Published already: the rows stay and go out again once the transaction ended (at least once).
        throw new StorageError(
          'a transaction is open on the outbox connection (begun by hand and left open across an await): the rows published are deleted once it ends',
          { retryable: true },
        );
      }
      try {
        removeAll(seqs as number[]);
      } catch (error) {
        throw toStorageError(error);
      }
    },
    onEnqueue: (listener) => outbox.onEnqueue(listener),
    async backlog() {
      try {
        const row = backlog.get() as { rows: number; oldestAt: number | null };
        return { rows: row.rows, oldestAt: row.oldestAt ?? undefined };
      } catch (error) {
        throw toStorageError(error);
      }
    },
  };
}
