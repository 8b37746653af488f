import {
  type EventStore,
  type Projection,
  type SchemaRegistry,
  StoreClosedError,
  type StoreLimits,
  ValidationError,
} from '@factline/core';
import {
  checkInlineProjections,
  defaultStoreLimits,
  instrumentEventStore,
  type PreparedAppend,
  prepareAppend,
  withSchemas,
} from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { migrate } from '../migrations.ts';
import { checkOpenDatabaseOptions, checkSqliteEventStoreOptions, connectionOptions } from '../options.ts';
import { createAppendSignal } from './append-signal.ts';
import { createInlineRun, initInlineProjections } from './inline-projections.ts';
import { openFile } from './open-file.ts';
import { createReadPaths } from './read-paths.ts';
import { eventStoreMigrations } from './schema.ts';
import { toStorageError } from './sqlite-errors.ts';
import { prepareStatements } from './statements.ts';
import { createStreamRemoval } from './stream-removal.ts';
import { createWritePaths } from './write-paths.ts';
import { createWriteQueue, type WriteQueueStats } from './write-queue.ts';

// Projection runners on SQLite take the same rule for their handlers.
export { synchronously } from './inline-projections.ts';

export interface SqliteEventStoreOptions {
  /** The database file, or `':memory:'`. */
  path: string;
  /**
   * `'full'` (default): a committed append survives a power loss.
   * `'normal'`: faster; in WAL mode the last commits may be lost on power
   * loss (never on a process crash), and the file is never corrupted.
   */
  synchronous?: 'full' | 'normal';
  /** How long a write waits for another process's lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  limits?: Partial<StoreLimits>;
  /** Clock for `recordedAt`; defaults to `Date.now`. */
  now?: () => number;
  /** Most writes committed in one transaction. Default 256. */
  maxBatch?: number;
  /**
   * Inline projections: run inside each append's transaction, so their read
   * models are up to date the moment `append` resolves. A handler that throws
   * fails the append and nothing of it is written. Handlers must be
   * synchronous (better-sqlite3 transactions are); the handle they get
   * refuses every statement once the append's transaction ended.
   */
  inlineProjections?: readonly Projection<Database>[];
  /**
   * The application's event types: appends are validated and stamped with
   * their current schema version, every read upcasts to it (core's `withSchemas`).
   */
  schemas?: SchemaRegistry;
}

export interface SqliteEventStore extends EventStore {
  /** The better-sqlite3 connection, for read models and other ports sharing the file. */
  readonly database: Database;
  /** Group-commit counters since open. */
  stats(): WriteQueueStats;
  /**
   * Calls `listener` with the new head position after every commit that
   * appended events (in this process). Returns the unsubscribe function.
   */
  onAppend(listener: (position: number) => void): () => void;
}

/** Opens the connection with the pragmas every Factline SQLite file uses. */
export function openSqliteDatabase(
  path: string,
  options: Pick<SqliteEventStoreOptions, 'synchronous' | 'busyTimeoutMs'> = {},
): Database {
  if (typeof path !== 'string') {
    throw new ValidationError({ path: 'openSqliteDatabase.path', message: "must be a file path or ':memory:'" });
  }
  checkOpenDatabaseOptions(options);
  const db = openFile(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    if (path !== ':memory:' && path !== '') db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    return db;
  } catch (error) {
    db.close();
    throw toStorageError(error);
  }
}

/**
 * The event store on one SQLite file: WAL, durable by default, schema
 * migrated on open, concurrent appends group-committed.
 *
 * The parts, one file each: `statements.ts` (the SQL), `row-codec.ts`,
 * `write-paths.ts` (the append, as a job of `write-queue.ts`, with
 * `inline-projections.ts`), `append-signal.ts` (waking runners),
 * `read-paths.ts`, `stream-removal.ts`.
 *
 * @example
 * const store = getSqliteEventStore({ path: 'orders.db' });
 * await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }], { expectedVersion: 'no-stream' });
 * for await (const event of store.readAll()) console.log(event.position, event.type);
 * await store.close();
 */
export function getSqliteEventStore(options: SqliteEventStoreOptions): SqliteEventStore {
  checkSqliteEventStoreOptions(options);
  if (typeof options?.path !== 'string') {
    throw new ValidationError({ path: 'path', message: "must be a file path or ':memory:'" });
  }
  if (options.synchronous !== undefined && options.synchronous !== 'full' && options.synchronous !== 'normal') {
    throw new ValidationError({ path: 'synchronous', message: "must be 'full' or 'normal'" });
  }
  const inline = checkInlineProjections(options.inlineProjections, 'getSqliteEventStore.inlineProjections');
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const db = openSqliteDatabase(options.path, connectionOptions(options));
  try {
    migrate(db, 'event-store', eventStoreMigrations);
    initInlineProjections(db, inline);
  } catch (error) {
    db.close();
    throw toStorageError(error);
  }
  const signal = createAppendSignal();
  const writes = createWriteQueue(db, options.maxBatch, signal.signal);
  const sql = prepareStatements(db);
  const runInline = inline.length > 0 ? createInlineRun(db, inline) : undefined;
  const { writeAppend } = createWritePaths({ sql, signal, now, runInline });

  let closed = false;
  const open = () => {
    if (closed) throw new StoreClosedError();
  };
  const guard = <T>(work: () => T): Promise<T> => {
    try {
      open();
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(toStorageError(error));
    }
  };
  const appendJob = (append: PreparedAppend) => () => writeAppend(append);

  const store: SqliteEventStore = {
    database: db,

    async append(streamId, events, appendOptions) {
      open();
      const append = prepareAppend(streamId, events, appendOptions, limits);
      return writes.enqueue(appendJob(append));
    },

    ...createReadPaths({ db, sql, limits, open, guard }),
    ...createStreamRemoval({ sql, writes, limits, now, open }),

    stats: () => ({ ...writes.stats }),

    onAppend: (listener) => signal.onAppend(listener),

    async close() {
      if (closed) return;
      closed = true;
      writes.drain();
      signal.close();
      db.close();
    },
  };
  return instrumentEventStore(options.schemas ? withSchemas(store, options.schemas) : store, 'sqlite');
}
