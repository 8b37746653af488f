import {
  type AppendOptions,
  type AppendResult,
  type DeleteStreamOptions,
  type Event,
  type EventStore,
  type EventToAppend,
  isFactlineError,
  type Projection,
  ProjectionFailedError,
  type ReadAllOptions,
  type ReadStreamOptions,
  type ReadStreamResult,
  type RecordedEvent,
  type RecordedOf,
  StoreClosedError,
  type StoreLimits,
  StreamDeletedError,
  type StreamInfo,
  StreamNotFoundError,
  ValidationError,
} from '@factline/core';
import {
  assertIntegerOption,
  assertStreamId,
  checkExpectedVersion,
  defaultStoreLimits,
  lazyAppendResult,
  matchRetriedAppend,
  normalizeDeleteStream,
  normalizeReadAll,
  normalizeReadStream,
  type PreparedAppend,
  prepareAppend,
  type StoredEvent,
  storedAppendResult,
  toRecordedEvent,
} from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';
import { migrate } from '../migrations.ts';
import { checkOpenDatabaseOptions, checkSqliteEventStoreOptions, connectionOptions } from '../options.ts';
import { withTransactionHandle } from '../transaction-handle.ts';
import { openFile } from './open-file.ts';
import { eventStoreMigrations } from './schema.ts';
import { toStorageError } from './sqlite-errors.ts';
import { createWriteQueue, type WriteQueueStats } from './write-queue.ts';

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

/** Rows come back named as core's `StoredEvent`, so they convert without copying field by field. */
type EventRow = StoredEvent;

interface StreamRow {
  /** 0 when the stream has no events and no record. */
  version: number;
  truncated_before: number;
  tombstoned: number;
  /** 1 when `factline_streams` holds a row for the stream. */
  recorded: number;
}

const EVENT_COLUMNS = `position, event_id AS id, stream_id AS streamId, stream_version AS streamVersion, type,
  schema_version AS schemaVersion, data, metadata, recorded_at AS recordedAt`;

/** Opens the connection with the pragmas every Factline SQLite file uses. */
export function openSqliteDatabase(
  path: string,
  options: Pick<SqliteEventStoreOptions, 'synchronous' | 'busyTimeoutMs'> = {},
): Database {
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
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const db = openSqliteDatabase(options.path, connectionOptions(options));
  try {
    migrate(db, 'event-store', eventStoreMigrations);
  } catch (error) {
    db.close();
    throw toStorageError(error);
  }
  const appendListeners = new Set<(position: number) => void>();
  let appendedHead = 0;
  let notifiedHead = 0;
  const writes = createWriteQueue(db, options.maxBatch, () => {
    if (appendedHead <= notifiedHead) return;
    notifiedHead = appendedHead;
    for (const listener of appendListeners) listener(appendedHead);
  });
  const inline = [...(options.inlineProjections ?? [])];
  for (const projection of inline) {
    if (typeof projection?.handle !== 'function' || !Array.isArray(projection.handles)) {
      db.close();
      throw new ValidationError({ path: 'inlineProjections', message: 'each needs handles (event types) and handle' });
    }
    const init = projection.init;
    if (init) {
      try {
        db.transaction(() => synchronously(withTransactionHandle(db, init, projection.name), projection.name))();
      } catch (error) {
        db.close();
        throw toStorageError(error);
      }
    }
  }

  const sql = {
    stream: db.prepare<[string, string], StreamRow>(
      `SELECT MAX(COALESCE((SELECT MAX(stream_version) FROM factline_events WHERE stream_id = ?), 0),
                  COALESCE(s.version, 0)) AS version,
              COALESCE(s.truncated_before, 1) AS truncated_before,
              COALESCE(s.tombstoned, 0) AS tombstoned,
              s.stream_id IS NOT NULL AS recorded
       FROM (SELECT 1) LEFT JOIN factline_streams s ON s.stream_id = ?`,
    ),
    recordStream: db.prepare(
      `INSERT INTO factline_streams (stream_id, version, truncated_before, tombstoned) VALUES (?, ?, ?, ?)
       ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
         truncated_before = excluded.truncated_before, tombstoned = excluded.tombstoned`,
    ),
    insertEvent: db.prepare(
      `INSERT INTO factline_events (event_id, stream_id, stream_version, category, type, schema_version, data, metadata, recorded_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    eventById: db.prepare<[string], EventRow>(`SELECT ${EVENT_COLUMNS} FROM factline_events WHERE event_id = ?`),
    readForwards: db.prepare<[string, number, number, number], EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM factline_events
       WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ? ORDER BY stream_version LIMIT ?`,
    ),
    readBackwards: db.prepare<[string, number, number, number], EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM factline_events
       WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ? ORDER BY stream_version DESC LIMIT ?`,
    ),
    head: db.prepare<[], { head: number }>('SELECT COALESCE(MAX(position), 0) AS head FROM factline_events'),
    deleteEvents: db.prepare('DELETE FROM factline_events WHERE stream_id = ?'),
    deleteEventsBefore: db.prepare('DELETE FROM factline_events WHERE stream_id = ? AND stream_version < ?'),
    // See keepHeadPosition: an invisible row that holds the highest position handed out.
    headMarker: db.prepare(
      `INSERT INTO factline_events (position, event_id, stream_id, stream_version, category, type, schema_version, data, metadata, recorded_at)
       VALUES (?, ?, '', ?, '', '', 1, 'null', '{}', ?)`,
    ),
    forgetStream: db.prepare('DELETE FROM factline_streams WHERE stream_id = ?'),
  };
  const readAllStatements = new Map<string, Statement<unknown[], EventRow>>();
  const readAllStatement = (types: boolean, categories: boolean) => {
    const key = `${types}:${categories}`;
    let statement = readAllStatements.get(key);
    if (!statement) {
      statement = db.prepare<unknown[], EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM factline_events WHERE position > ? AND stream_id <> ''
         ${types ? 'AND type IN (SELECT value FROM json_each(?))' : ''}
         ${categories ? 'AND category IN (SELECT value FROM json_each(?))' : ''}
         ORDER BY position LIMIT ?`,
      );
      readAllStatements.set(key, statement);
    }
    return statement;
  };
  const snapshot = db.transaction((read: () => unknown) => read());
  const readSnapshot = <T>(read: () => T): T => snapshot(read) as T;

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

  /** Current state of a stream; throws if tombstoned. */
  const liveStream = (streamId: string): StreamRow => {
    const row = sql.stream.get(streamId, streamId) as StreamRow;
    if (row.tombstoned) throw new StreamDeletedError(streamId);
    return row;
  };

  /** The stored events whose ids this append uses, ignoring rows it wrote itself (versions above `before`). */
  const retriedAppend = (append: PreparedAppend, before: number): StoredEvent[] | undefined =>
    matchRetriedAppend(
      append,
      append.events.map((e) => {
        const row = sql.eventById.get(e.id);
        const ownRow = row && row.streamId === append.streamId && row.streamVersion > before;
        return row && !ownRow ? row : undefined;
      }),
    );

  /** Runs inside the write transaction. */
  const writeAppend = (append: PreparedAppend): AppendResult => {
    const current = liveStream(append.streamId).version;
    try {
      checkExpectedVersion(append.streamId, append.expectedVersion, current);
    } catch (conflict) {
      const retried = retriedAppend(append, current);
      if (retried) return storedAppendResult(append.streamId, retried);
      throw conflict;
    }
    const recordedAt = now();
    let version = current;
    let position = 0;
    const positions: number[] = [];
    for (const event of append.events) {
      version += 1;
      try {
        position = Number(
          sql.insertEvent.run(
            event.id,
            append.streamId,
            version,
            append.category,
            event.type,
            event.schemaVersion,
            event.data,
            event.metadata,
            recordedAt,
          ).lastInsertRowid,
        );
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw error;
        // An id is stored already (expectedVersion let the append through). A faithful
        // retry fails on its first event, before writing anything: report the original
        // result. Otherwise matchRetriedAppend throws EventIdConflictError and the
        // job's savepoint rolls back what this append wrote so far.
        const retried = retriedAppend(append, current);
        if (retried && version === current + 1) return storedAppendResult(append.streamId, retried);
        throw toStorageError(error);
      }
      positions.push(position);
    }
    // Most callers need only version and position: build the event objects on first use.
    const stored = (): StoredEvent[] =>
      append.events.map((event, i) => ({
        ...event,
        streamId: append.streamId,
        streamVersion: current + i + 1,
        position: positions[i] as number,
        recordedAt,
      }));
    if (inline.length > 0) runInline(stored());
    if (position > appendedHead) appendedHead = position;
    return lazyAppendResult(append.streamId, version, position, stored);
  };

  /** Applies the appended events to the inline projections, inside the append's transaction. */
  const runInline = (events: readonly StoredEvent[]) => {
    let recorded: RecordedEvent[] | undefined;
    for (const projection of inline) {
      recorded ??= events.map(toRecordedEvent);
      const mine = recorded.filter((e) => projection.handles.includes(e.type));
      if (mine.length === 0) continue;
      try {
        // A handle ended with the append's transaction: nothing the handler writes later can land.
        const handled = withTransactionHandle(
          db,
          (tx) => projection.handle(mine, tx),
          `projection '${projection.name}'`,
        );
        synchronously(handled, projection.name);
      } catch (error) {
        // The user's error, named: without it the write queue would report a storage failure.
        throw isFactlineError(error)
          ? error
          : new ProjectionFailedError(projection.name, (mine[0] as RecordedEvent).position, error);
      }
    }
  };

  /**
   * SQLite gives a new row the highest position + 1, so deleting the newest
   * events would hand their positions out again and a reader that saw them
   * would skip the newcomers. Plain `INTEGER PRIMARY KEY` is cheaper per append
   * than AUTOINCREMENT, so deletions guard instead: when they remove the head,
   * they leave a marker row there (empty stream id, which no stream can have,
   * and an id with a control character, which no event can have; reads skip it).
   */
  const keepHeadPosition = (deleteRows: () => void) => {
    const { head } = sql.head.get() as { head: number };
    deleteRows();
    if ((sql.head.get() as { head: number }).head < head) sql.headMarker.run(head, `\u0001head-${head}`, -head, now());
  };

  const appendJob = (append: PreparedAppend) => () => writeAppend(append);

  const store: SqliteEventStore = {
    database: db,

    async append(streamId: string, events: readonly EventToAppend[], appendOptions?: AppendOptions) {
      open();
      const append = prepareAppend(streamId, events, appendOptions, limits);
      return writes.enqueue(appendJob(append));
    },

    readStream(streamId: string, readOptions?: ReadStreamOptions): Promise<ReadStreamResult> {
      return guard(() => {
        assertStreamId(streamId, limits);
        const { from, to, direction, limit } = normalizeReadStream(readOptions);
        return readSnapshot(() => {
          const stream = liveStream(streamId);
          if (stream.version === 0) return { streamId, exists: false, version: 0, events: [] };
          const statement = direction === 'forwards' ? sql.readForwards : sql.readBackwards;
          const rows = statement.all(streamId, from, to, limit);
          return { streamId, exists: true, version: stream.version, events: rows.map(toRecordedEvent) };
        });
      });
    },

    // The caller names the union it expects; the store yields what was stored, unchecked (see `EventStore.readAll`).
    async *readAll<E extends Event = Event>(readOptions?: ReadAllOptions): AsyncGenerator<RecordedOf<E>> {
      open();
      const { after, limit, types, categories, batchSize } = normalizeReadAll(readOptions);
      const statement = readAllStatement(types !== undefined, categories !== undefined);
      const filters: string[] = [];
      if (types) filters.push(JSON.stringify(types));
      if (categories) filters.push(JSON.stringify(categories));
      let cursor = after;
      let remaining = limit;
      while (remaining > 0) {
        open();
        const rows = statement.all(cursor, ...filters, Math.min(batchSize, remaining));
        if (rows.length === 0) return;
        for (const row of rows) yield toRecordedEvent(row) as RecordedOf<E>;
        cursor = (rows[rows.length - 1] as EventRow).position;
        remaining -= rows.length;
        if (rows.length < batchSize) return;
      }
    },

    headPosition() {
      return guard(() => (sql.head.get() as { head: number }).head);
    },

    streamInfo(streamId: string): Promise<StreamInfo | undefined> {
      return guard(() => {
        assertStreamId(streamId, limits);
        const row = sql.stream.get(streamId, streamId) as StreamRow;
        if (row.version === 0 && !row.recorded) return undefined;
        return {
          streamId,
          exists: row.tombstoned === 0,
          version: row.version,
          truncatedBefore: row.truncated_before,
          tombstoned: row.tombstoned === 1,
        };
      });
    },

    async deleteStream(streamId: string, deleteOptions?: DeleteStreamOptions) {
      open();
      assertStreamId(streamId, limits);
      const { expected, mode } = normalizeDeleteStream(deleteOptions);
      await writes.enqueue(() => {
        const stream = liveStream(streamId);
        if (stream.version === 0) throw new StreamNotFoundError(streamId);
        checkExpectedVersion(streamId, expected, stream.version);
        keepHeadPosition(() => sql.deleteEvents.run(streamId));
        if (mode === 'hard') sql.recordStream.run(streamId, stream.version, stream.version + 1, 1);
        else sql.forgetStream.run(streamId);
      });
    },

    async truncateBefore(streamId: string, version: number) {
      open();
      assertStreamId(streamId, limits);
      const requested = assertIntegerOption(version, 'version', 1) as number;
      await writes.enqueue(() => {
        const stream = liveStream(streamId);
        if (stream.version === 0) throw new StreamNotFoundError(streamId);
        const before = Math.min(requested, stream.version + 1);
        if (before <= stream.truncated_before) return;
        keepHeadPosition(() => sql.deleteEventsBefore.run(streamId, before));
        sql.recordStream.run(streamId, stream.version, before, 0);
      });
    },

    stats: () => ({ ...writes.stats }),

    onAppend(listener: (position: number) => void) {
      appendListeners.add(listener);
      return () => {
        appendListeners.delete(listener);
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      writes.drain();
      appendListeners.clear();
      db.close();
    },
  };
  return store;
}

/** better-sqlite3 runs transactions synchronously: a handler that returns a promise would escape it. */
export function synchronously(result: unknown, projection: string): void {
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    throw new ValidationError({
      path: 'handle',
      message: `projection '${projection}' returned a promise; SQLite projection handlers must be synchronous`,
    });
  }
}
