import {
  type AppendOptions,
  type AppendResult,
  type DeleteStreamOptions,
  type Event,
  EventIdConflictError,
  type EventStore,
  type EventToAppend,
  type ExpectedVersion,
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
import pg from 'pg';
import { checkOut } from '../checkout.ts';
import { migratePostgres, quoteSchema } from '../migrations.ts';
import { checkPostgresEventStoreOptions } from '../options.ts';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';
import { boundConnectionWaits, DEFAULT_CONNECTION_WAIT_MS, ledgerOf, poolMax } from '../pool-ledger.ts';
import { statementName } from '../statement-name.ts';
import { parseTimestamptz } from '../timestamps.ts';
import { withClientHandle } from '../transaction-handle.ts';
import { AppendBatcher, type AppendBatchStats } from './append-batcher.ts';
import type { PipelinedStatement } from './pipeline.ts';
import { appendChannel, appendLockKey, ExpectedCode, eventStoreMigrations, Outcome, RefusedCode } from './schema.ts';
import { WriterConnections } from './writer-connections.ts';

export interface PostgresEventStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /**
   * A node-postgres pool to use instead of opening one. The store never ends
   * it; its owner must. Its type parsers are not changed (the store asks for
   * the column types it needs per query).
   */
  pool?: pg.Pool;
  /** The schema holding the store's tables; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool the store opens. Default 10. */
  poolSize?: number;
  limits?: Partial<StoreLimits>;
  /** Clock for `recordedAt`; defaults to `Date.now`. */
  now?: () => number;
  /** Most appends written in one batch (one statement, one commit). Default 256; 48 with inline projections (a savepoint each). */
  maxBatch?: number;
  /**
   * Inline projections: run inside each append's transaction (the handler gets
   * the transaction's `pg` client), so their read models are up to date the
   * moment `append` resolves. A handler that throws fails that append and
   * nothing of it is written. Appends then take a few more round trips each.
   */
  inlineProjections?: readonly Projection<pg.PoolClient>[];
  /**
   * Announce appends with `NOTIFY` on the store's channel (payload: the head
   * position), so projection runners in other processes wake at once (default
   * true). At most one notification per `notifyIntervalMs`: the first append
   * after the interval carries it in its own transaction (delivered at its
   * commit, no extra round trip); when appends stop, the last ones are
   * announced from another connection. See docs/postgres.md, "Signalling
   * appends". Runners in this process are woken directly, and a lost
   * notification only delays a runner to its periodic check.
   */
  notifyAppends?: boolean;
  /** Shortest time between two such notifications, in ms (later appends fold into the next one). Default 10. */
  notifyIntervalMs?: number;
}

export interface PostgresStoreStats extends AppendBatchStats {
  /** Notifications carried by an append's own transaction. */
  carriedNotifications: number;
  /** Notifications sent from another connection (after appends stopped, or from paths that cannot carry one). */
  separateNotifications: number;
}

export interface PostgresEventStore extends EventStore {
  /** The pool the store uses: read models and other ports may share it. */
  readonly pool: pg.Pool;
  /** The schema holding the store's tables. */
  readonly schema: string;
  /** Group-commit and notification counters since open. */
  stats(): PostgresStoreStats;
  /** Drops the store's schema with everything in it (tests and benchmarks), then closes the store. */
  dropSchema(): Promise<void>;
  /**
   * Calls `listener` with the new head position after appends from this store
   * commit. Returns the unsubscribe function.
   */
  onAppend(listener: (position: number) => void): () => void;
}

/**
 * Batches written at once (see AppendBatcher). One: measured against two (the
 * next batch waiting on the append lock while one commits), one slot gave
 * batches twice as large, half the WAL flushes and more appends per second.
 */
const WRITE_SLOTS = 1;

/**
 * A separate notification waits this long past the interval, so that while
 * appends keep coming one of them carries it instead.
 */
const CARRY_SLACK_MS = 2;
/** How long appends stop carrying notifications after PostgreSQL's queue refused one. */
const CARRY_PAUSE_MS = 60_000;

/** Positions and versions are bigint columns; they stay below 2^53, so they come back as numbers. */
const parseBigint = (value: string) => Number(value);
/** `bigint[]` of plain numbers, as the append function returns (`{1,5,120}`). */
const INT8_ARRAY = 1016;
const parseBigintArray = (value: string) => value.slice(1, -1).split(',').map(Number);
/** `data` and `metadata` come back as the JSON text that was stored; the store parses it once. */
const keepText = (value: string) => value;
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8) return parseBigint;
    if (oid === pg.types.builtins.JSON) return keepText;
    if (oid === pg.types.builtins.TIMESTAMPTZ) return parseTimestamptz;
    if (oid === INT8_ARRAY) return parseBigintArray;
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

interface StreamStateRow {
  version: number;
  truncated_before: number;
  tombstoned: boolean;
  recorded: boolean;
}

interface AppendOutcomeRow {
  outcome: number;
  version_after: number;
  last_pos: number | null;
}

/** The stored-event shape, named as core's `StoredEvent` so rows convert without copying field by field. */
const EVENT_COLUMNS = `position, event_id AS id, stream_id AS "streamId", stream_version AS "streamVersion", type,
  schema_version AS "schemaVersion", data, metadata, recorded_at AS "recordedAt"`;

/**
 * An event as its read statements return it (`EVENT_ROW_COLUMNS`, from some
 * column on): position, id, version, type, schema version (null for 1), data,
 * metadata (null for `{}`), recorded at (epoch milliseconds). Every text
 * field costs the driver a string, so defaults travel as nulls and the time
 * as a number.
 */
const EVENT_ROW_COLUMNS = (s: string) => `${s}.events.position, event_id, stream_version, type,
  NULLIF(schema_version, 1), data, CASE WHEN metadata::text = '{}' THEN NULL ELSE metadata END,
  floor(extract(epoch FROM recorded_at) * 1000)::bigint`;

/** The event whose `EVENT_ROW_COLUMNS` start at `row[at]`, as `toRecordedEvent` makes it (fresh objects, same shape). */
function eventOfRow(row: readonly unknown[], at: number, streamId: string): RecordedEvent {
  const metadata = row[at + 6] as string | null;
  return {
    id: row[at + 1] as string,
    type: row[at + 3] as string,
    data: JSON.parse(row[at + 5] as string),
    metadata: metadata === null ? {} : JSON.parse(metadata),
    streamId,
    streamVersion: row[at + 2] as number,
    position: row[at] as number,
    recordedAt: new Date(row[at + 7] as number),
    schemaVersion: (row[at + 4] as number | null) ?? 1,
  };
}

let isoMs = Number.NaN;
let isoText = '';
/**
 * `recordedAt` as the text the statements take. Formatting a date costs about
 * as much as the rest of an append's own JavaScript, and appends made in the
 * same millisecond share it, so the last one is kept.
 */
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/** The batch append function's parameters: one array per column, events flattened in append order. */
function appendParameters(batch: readonly PreparedAppend[], recordedAt: number): unknown[] {
  const streams: string[] = [];
  const categories: string[] = [];
  const expected: number[] = [];
  const counts: number[] = [];
  const ids: string[] = [];
  const types: string[] = [];
  const schemaVersions: number[] = [];
  const data: string[] = [];
  const metadata: string[] = [];
  for (const append of batch) {
    streams.push(append.streamId);
    categories.push(append.category);
    expected.push(expectedCode(append.expectedVersion));
    counts.push(append.events.length);
    for (const event of append.events) {
      ids.push(event.id);
      types.push(event.type);
      schemaVersions.push(event.schemaVersion);
      data.push(event.data);
      metadata.push(event.metadata);
    }
  }
  const at = isoTime(recordedAt);
  return [streams, categories, expected, counts, ids, types, schemaVersions, data, metadata, at];
}

function expectedCode(expected: ExpectedVersion): number {
  if (typeof expected === 'number') return expected;
  if (expected === 'no-stream') return 0;
  if (expected === 'stream-exists') return ExpectedCode.streamExists;
  return ExpectedCode.any;
}

/**
 * The event store on PostgreSQL: several processes may share it. Appends from
 * one process are group-committed; every append takes one advisory lock, so
 * global positions are handed out in commit order and a `readAll` reader
 * resuming from any position never skips an event that commits late.
 *
 * @example
 * const store = await getPostgresEventStore({ connectionString: 'postgres://app@127.0.0.1/app' });
 * await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }], { expectedVersion: 'no-stream' });
 * for await (const event of store.readAll({ after: 0 })) console.log(event.position, event.type);
 * await store.close();
 */
export async function getPostgresEventStore(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
  checkPostgresEventStoreOptions(options);
  if (options?.pool === undefined && typeof options?.connectionString !== 'string') {
    throw new ValidationError({ path: 'connectionString', message: 'give a connection string or a pg Pool' });
  }
  const schemaName = options.schema ?? 'factline';
  const s = quoteSchema(schemaName);
  const poolSize = assertIntegerOption(options.poolSize, 'poolSize', 1) ?? 10;
  // With inline projections every append of a batch is a savepoint (a subtransaction): past 64
  // in one transaction PostgreSQL stops caching them per backend, which slows every other
  // session's snapshots, so such batches stop at 48 appends unless told otherwise.
  const maxBatch =
    assertIntegerOption(options.maxBatch, 'maxBatch', 1) ?? ((options.inlineProjections?.length ?? 0) > 0 ? 48 : 256);
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const ownPool = options.pool === undefined;
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.connectionString,
      max: poolSize,
      application_name: 'factline',
      // Nothing waits for a connection forever: past this, a TimeoutError.
      connectionTimeoutMillis: DEFAULT_CONNECTION_WAIT_MS,
    });
  // An idle connection the server closed (restart, pg_terminate_backend) is dropped
  // from the pool and replaced on next use; without a listener it would crash the process.
  if (ownPool) pool.on('error', () => undefined);
  boundConnectionWaits(pool);
  try {
    await migratePostgres(pool, schemaName, 'event-store', eventStoreMigrations);
    for (const projection of options.inlineProjections ?? []) {
      const init = projection?.init;
      if (!init) continue;
      const client = await checkOut(pool);
      try {
        await client.query('BEGIN');
        await withClientHandle(client, init);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw toStorageError(error);
      } finally {
        client.release();
      }
    }
  } catch (error) {
    if (ownPool) await pool.end().catch(() => undefined);
    throw error;
  }

  const inline = [...(options.inlineProjections ?? [])];
  for (const projection of inline) {
    if (typeof projection?.handle !== 'function' || !Array.isArray(projection.handles)) {
      if (ownPool) await pool.end().catch(() => undefined);
      throw new ValidationError({ path: 'inlineProjections', message: 'each needs handles (event types) and handle' });
    }
  }

  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    try {
      const result = await pool.query<R>({ name: statementName(schemaName, name), text, values, types: typeParsers });
      return result.rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };

  // The pool's ledger leaves at least one connection to reads (a pool of 1 holds none for writes).
  const writers = new WriterConnections(pool, Math.min(WRITE_SLOTS, poolMax(pool) - 1), ledgerOf(pool));
  /** `name` is the statement's full name (from `statementName`). */
  const write = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    try {
      return await writers.query<R>({ name, text, values, types: typeParsers });
    } catch (error) {
      throw toStorageError(error);
    }
  };

  /** Runs `work` in a transaction holding the append lock: deletions and truncations. */
  const underAppendLock = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await checkOut(pool);
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock${appendLockKey(s)}`);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = isConnectionFailure(error);
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw toStorageError(error);
    } finally {
      client.release(broken);
    }
  };

  // ---- announcing appends to other processes (docs/postgres.md, "Signalling appends") ----
  const listeners = new Set<(position: number) => void>();
  const channel = appendChannel(schemaName);
  const notifyAppends = options.notifyAppends ?? true;
  const notifyIntervalMs = assertIntegerOption(options.notifyIntervalMs, 'notifyIntervalMs', 0) ?? 10;
  const notifyStats = { carriedNotifications: 0, separateNotifications: 0 };
  let appendedHead = 0;
  let signalledHead = 0;
  let notifiedHead = 0;
  let notifying: Promise<void> | undefined;
  let notifyTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the last notification was sent or handed to an append to carry. */
  let lastNotifyAt = Number.NEGATIVE_INFINITY;
  /** Carrying is paused after PostgreSQL's notification queue refused one (it is full). */
  let carryPausedUntil = Number.NEGATIVE_INFINITY;
  const notifyHead = {
    name: statementName(schemaName, 'notify-head'),
    text: `SELECT head, pg_notify($1, head::text)
             FROM (SELECT coalesce(max(position), 0) AS head FROM ${s}.events) AS h`,
  };
  const carriedNotify = { name: notifyHead.name, values: [channel] };
  /**
   * Whether the pipeline about to be sent should carry the notification: when
   * the interval has passed since the last one. Claims the interval (returns
   * the time it replaced, for `unclaimNotify` when the pipeline fails).
   */
  const claimNotify = (): number | undefined => {
    if (!notifyAppends || closed) return undefined;
    const at = Date.now();
    if (at - lastNotifyAt < notifyIntervalMs || at < carryPausedUntil) return undefined;
    const previous = lastNotifyAt;
    lastNotifyAt = at;
    return previous;
  };
  /** After a carrying pipeline failed (nothing of it committed): the notification is still owed. */
  const unclaimNotify = (previous: number, error?: unknown) => {
    lastNotifyAt = previous;
    // 54000 at commit: "too many notifications in the NOTIFY queue" (a listener stopped reading).
    if ((error as { code?: unknown } | undefined)?.code === '54000') carryPausedUntil = Date.now() + CARRY_PAUSE_MS;
  };
  /** After a carrying pipeline committed: its last statement's row holds the head it announced. */
  const carried = (rows: (string | null)[][][]) => {
    notifyStats.carriedNotifications += 1;
    const head = Number(rows.at(-1)?.[0]?.[0]);
    if (head > notifiedHead) notifiedHead = head;
  };
  /**
   * The separate notification, for appends no carried notification covered.
   * While appends keep coming, the first one after the interval carries it, so
   * this waits a little longer than the interval before sending its own.
   */
  const notifyOthers = () => {
    if (notifying || notifyTimer || closed || appendedHead <= notifiedHead) return;
    const wait = lastNotifyAt + notifyIntervalMs - Date.now();
    if (wait > 0) {
      notifyTimer = setTimeout(() => {
        notifyTimer = undefined;
        notifyOthers();
      }, wait + CARRY_SLACK_MS);
      return;
    }
    lastNotifyAt = Date.now();
    const head = appendedHead;
    notifyStats.separateNotifications += 1;
    notifying = pool
      .query('SELECT pg_notify($1, $2)', [channel, String(head)])
      .then(
        () => {
          if (head > notifiedHead) notifiedHead = head;
        },
        () => undefined, // runners elsewhere fall back to their periodic check
      )
      .finally(() => {
        notifying = undefined;
        notifyOthers();
      });
  };

  const STREAM_STATE = `SELECT greatest(coalesce((SELECT max(e.stream_version) FROM ${s}.events e WHERE e.stream_id = $1), 0),
           coalesce(st.version, 0)) AS version,
         coalesce(st.truncated_before, 1) AS truncated_before,
         coalesce(st.tombstoned, false) AS tombstoned,
         st.stream_id IS NOT NULL AS recorded
    FROM (SELECT 1) AS one LEFT JOIN ${s}.streams st ON st.stream_id = $1`;

  const APPEND = `SELECT outcome, version_after, last_pos
    FROM ${s}.append_events($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::text[], $6::text[],
                            $7::integer[], $8::text[], $9::text[], $10::timestamptz)`;

  const APPEND_ONE = `SELECT ${s}.append_event($1, $2, $3, $4, $5, $6, $7, $8, $9) AS r`;

  // The single-event inserts below take `append_event`'s parameters and share these parts.
  const INSERT_EVENT = `INSERT INTO ${s}.events (position, event_id, stream_id, stream_version,
                                    category, type, schema_version, data, metadata, recorded_at)`;
  /** The inserted row's values, with `version` as its stream version. */
  const eventValues = (version: string) => `nextval('${s}.events_position_seq'), $4::text, $1::text, ${version},
               $2::text, $5::text, $6::integer, $7::json, $8::json, $9::timestamptz`;
  /** The stream's version `v` and whether it has a `streams` row (`recorded`), as one row. */
  const STREAM_NOW = `SELECT coalesce(max(e.stream_version), 0) AS v,
                       EXISTS (SELECT 1 FROM ${s}.streams st WHERE st.stream_id = $1) AS recorded
                  FROM ${s}.events e WHERE e.stream_id = $1`;
  /** Whether the expected version ($3, coded as for `append_event`) holds for version `c.v`. */
  const EXPECTED_HOLDS = `CASE WHEN $3::bigint >= 0 THEN c.v = $3
                               WHEN $3 = ${ExpectedCode.streamExists} THEN c.v > 0
                               ELSE true END`;
  /**
   * Inserts one event when the expected version holds; when it does not,
   * `append_refused` fails the statement. For `any` and `stream-exists`,
   * which need the stream's version.
   */
  const checkedInsert = `${INSERT_EVENT}
        SELECT ${eventValues('c.v + 1')}
          FROM (${STREAM_NOW}) c
         WHERE CASE WHEN NOT c.recorded AND ${EXPECTED_HOLDS} THEN true
                    ELSE ${s}.append_refused(c.recorded, c.v) IS NULL END
        RETURNING position, stream_version`;
  /**
   * The same for an exact expected version N, without reading the stream's
   * version: the event becomes version N + 1, and the unique
   * `(stream_id, stream_version)` refuses the row (23505) when the stream is
   * past N. What else could make N wrong is checked with one index probe:
   * - N = 0 (`no-stream`): a `streams` row (the stream was truncated or
   *   hard-deleted, so it has a version or a tombstone without events);
   * - N > 0: event N must exist. Nothing removes a stream's latest event but
   *   a deletion of all its events, so an existing event N means the stream
   *   is alive and at least at N (a `streams` row then changes nothing).
   * When the probe fails, `append_refused` fails the statement, and
   * `append_event` decides, as it does after a 23505. A refused insert has
   * drawn a position: that hole is skipped like any other.
   */
  const firstInsert = `${INSERT_EVENT}
        VALUES (${eventValues(`CASE WHEN EXISTS (SELECT 1 FROM ${s}.streams st WHERE st.stream_id = $1)
                     THEN ${s}.append_refused(true, 0) ELSE $3::bigint + 1 END`)})
        RETURNING position, stream_version`;
  const nextInsert = `${INSERT_EVENT}
        VALUES (${eventValues(`CASE WHEN NOT EXISTS (SELECT 1 FROM ${s}.events e
                                      WHERE e.stream_id = $1 AND e.stream_version = $3::bigint)
                     THEN ${s}.append_refused(true, 0) ELSE $3 + 1 END`)})
        RETURNING position, stream_version`;
  /**
   * The same without the refusal, always answering one row: the position
   * (null when the insert did not apply), the stream's version before it, and
   * whether the stream has a `streams` row. A conflict in a batch is known
   * without another round trip, and does not fail the batch's other appends.
   */
  const reportedInsert = `WITH c AS (${STREAM_NOW}),
         ins AS (${INSERT_EVENT}
                 SELECT ${eventValues('c.v + 1')} FROM c
                  WHERE NOT c.recorded AND ${EXPECTED_HOLDS}
                 RETURNING position)
    SELECT (SELECT position FROM ins), c.v, c.recorded FROM c`;
  /**
   * Appends of one event go as a pipeline (one round trip, one implicit
   * transaction, no function call): first the append lock, then one of the
   * inserts above, run with a snapshot taken after the lock was granted. What
   * an insert cannot decide (a conflict found by the unique index, a stream
   * with a `streams` row, a stored id) goes to the append functions, which
   * decide as for any append. See docs/postgres.md, "The single-event append".
   */
  const fastAppend = [
    { name: statementName(schemaName, 'fast-lock'), text: `SELECT pg_advisory_xact_lock${appendLockKey(s)}` },
    { name: statementName(schemaName, 'fast-insert'), text: checkedInsert },
    { name: statementName(schemaName, 'batch-insert'), text: reportedInsert },
    { name: statementName(schemaName, 'first-insert'), text: firstInsert },
    { name: statementName(schemaName, 'next-insert'), text: nextInsert },
    notifyHead,
  ] as const;
  const [fastLock, fastInsert, batchInsert, fastFirstInsert, fastNextInsert] = fastAppend;
  const takeAppendLock = { name: fastLock.name, values: [] };
  const appendOneName = statementName(schemaName, 'append-one');
  const appendName = statementName(schemaName, 'append');

  /** The outcome of the fast path; undefined when the append function must decide. */
  const appendOneFast = async (parameters: (string | number)[]): Promise<AppendOutcomeRow | undefined> => {
    const expected = parameters[2] as number;
    const insert = expected === 0 ? fastFirstInsert : expected > 0 ? fastNextInsert : fastInsert;
    const statements: PipelinedStatement[] = [takeAppendLock, { name: insert.name, values: parameters }];
    const claimed = claimNotify();
    if (claimed !== undefined) statements.push(carriedNotify);
    let rows: (string | null)[][][] | undefined;
    try {
      rows = await writers.pipeline(fastAppend, statements);
    } catch (error) {
      if (claimed !== undefined) unclaimNotify(claimed, error);
      const { code, detail } = error as { code?: unknown; detail?: unknown };
      if (code === RefusedCode.versionConflict && typeof detail === 'string') {
        return { outcome: Outcome.versionConflict, version_after: Number(detail), last_pos: null };
      }
      if (code === RefusedCode.undecided || code === '23505') return undefined;
      // The notification queue refused the carried notification: append without it.
      if (code === '54000' && claimed !== undefined) return appendOneFast(parameters);
      throw toStorageError(error);
    }
    const row = rows?.[1]?.[0];
    if (!rows || !row) {
      if (claimed !== undefined) unclaimNotify(claimed);
      return undefined; // no connection could be held for the pipeline
    }
    if (claimed !== undefined) carried(rows);
    return { outcome: Outcome.appended, version_after: Number(row[1]), last_pos: Number(row[0]) };
  };

  /** The stored events with the ids an append uses. */
  const storedByIds = async (append: PreparedAppend): Promise<(StoredEvent | undefined)[]> => {
    const rows = await query<StoredEvent>(
      'events-by-id',
      `SELECT ${EVENT_COLUMNS} FROM ${s}.events WHERE event_id = ANY ($1::text[])`,
      [append.events.map((e) => e.id)],
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    return append.events.map((e) => byId.get(e.id));
  };

  /** The events an append stored, from its outcome (its positions are consecutive under the append lock). */
  const storedEvents = (append: PreparedAppend, row: AppendOutcomeRow, recordedAt: number): StoredEvent[] => {
    const last = row.last_pos as number;
    const count = append.events.length;
    return append.events.map((event, i) => ({
      ...event,
      streamId: append.streamId,
      streamVersion: row.version_after - count + i + 1,
      position: last - count + i + 1,
      recordedAt,
    }));
  };

  /** Turns one append's outcome into its result or error (after the batch committed). */
  const settle = (
    append: PreparedAppend,
    row: AppendOutcomeRow,
    recordedAt: number,
  ): AppendResult | Promise<AppendResult> => {
    if (row.outcome === Outcome.appended) {
      return lazyAppendResult(append.streamId, row.version_after, row.last_pos as number, () =>
        storedEvents(append, row, recordedAt),
      );
    }
    if (row.outcome === Outcome.tombstoned) throw new StreamDeletedError(append.streamId);
    return settleConflict(append, row);
  };

  const settleConflict = async (append: PreparedAppend, row: AppendOutcomeRow): Promise<AppendResult> => {
    // A conflict, or ids stored already: either a faithful retry of an append
    // whose outcome the caller never learned (report the original result), or a
    // real conflict. Ids the store generated cannot be stored yet: no lookup.
    if (!append.callerIds && row.outcome === Outcome.versionConflict) {
      checkExpectedVersion(append.streamId, append.expectedVersion, row.version_after);
    }
    const retried = matchRetriedAppend(append, await storedByIds(append));
    if (retried) return storedAppendResult(append.streamId, retried);
    if (row.outcome === Outcome.versionConflict) {
      checkExpectedVersion(append.streamId, append.expectedVersion, row.version_after);
    }
    throw new EventIdConflictError(append.events[0]?.id ?? '?', 'it was stored by another append meanwhile');
  };

  /**
   * With inline projections, a batch is one transaction on a client: each
   * append runs in its own savepoint, followed by the projections' handlers
   * on its events; a handler that throws rolls back that append alone.
   */
  const writeBatchInline = async (
    batch: readonly PreparedAppend[],
  ): Promise<(() => AppendResult | Promise<AppendResult>)[]> => {
    const recordedAt = now();
    const client = await checkOut(pool);
    let broken = false;
    const outcomes: (() => AppendResult | Promise<AppendResult>)[] = [];
    const appended: AppendOutcomeRow[] = [];
    try {
      await client.query('BEGIN');
      for (const append of batch) {
        await client.query('SAVEPOINT factline_append');
        try {
          const { rows } = await client.query<AppendOutcomeRow>({
            text: APPEND,
            values: appendParameters([append], recordedAt),
            types: typeParsers,
          });
          const row = rows[0] as AppendOutcomeRow;
          if (row.outcome === Outcome.appended) {
            const events = storedEvents(append, row, recordedAt).map(toRecordedEvent);
            for (const projection of inline) {
              const mine = events.filter((e) => projection.handles.includes(e.type));
              if (mine.length === 0) continue;
              try {
                // A handle ended with the handler: a query it sends later is refused, not run in another transaction.
                await withClientHandle(client, (tx) => projection.handle(mine, tx));
              } catch (error) {
                if (isConnectionFailure(error)) throw error;
                throw new ProjectionFailedError(projection.name, (mine[0] as RecordedEvent).position, error);
              }
            }
          }
          await client.query('RELEASE SAVEPOINT factline_append');
          appended.push(row);
          outcomes.push(() => settle(append, row, recordedAt));
        } catch (error) {
          if (isConnectionFailure(error)) throw error;
          await client.query('ROLLBACK TO SAVEPOINT factline_append');
          await client.query('RELEASE SAVEPOINT factline_append');
          const failure = isFactlineError(error) ? error : toStorageError(error);
          outcomes.push(() => {
            throw failure;
          });
        }
      }
      await client.query('COMMIT');
      for (const row of appended) noteAppended(row);
      return outcomes;
    } catch (error) {
      broken = isConnectionFailure(error);
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw toStorageError(error);
    } finally {
      client.release(broken);
    }
  };

  /** `append_event`'s parameters for an append of one event. */
  const oneEventParameters = (append: PreparedAppend, recordedAt: string): (string | number)[] => {
    const event = append.events[0] as PreparedAppend['events'][number];
    return [
      append.streamId,
      append.category,
      expectedCode(append.expectedVersion),
      event.id,
      event.type,
      event.schemaVersion,
      event.data,
      event.metadata,
      recordedAt,
    ];
  };

  /**
   * A batch of one-event appends as one pipeline: the append lock, then one
   * checked insert per append, in order (each sees the ones before it), then
   * one commit. A conflict is reported with the version the insert saw; an
   * append to a stream with a `streams` row is decided alone after the batch,
   * outside the write slot. Undefined when the batch must go through `append_events` instead:
   * no connection could be held, an id is already stored (23505 rolls the
   * whole pipeline back), or another statement error.
   */
  const writeOneEventBatch = async (
    batch: readonly PreparedAppend[],
    recordedAt: number,
  ): Promise<(() => AppendResult | Promise<AppendResult>)[] | undefined> => {
    let rows: (string | null)[][][] | undefined;
    const at = isoTime(recordedAt);
    const statements: PipelinedStatement[] = [takeAppendLock];
    for (const append of batch) statements.push({ name: batchInsert.name, values: oneEventParameters(append, at) });
    const claimed = claimNotify();
    if (claimed !== undefined) statements.push(carriedNotify);
    try {
      rows = await writers.pipeline(fastAppend, statements);
    } catch (error) {
      if (claimed !== undefined) unclaimNotify(claimed, error);
      if (isConnectionFailure(error)) throw toStorageError(error);
      return undefined;
    }
    if (!rows) {
      if (claimed !== undefined) unclaimNotify(claimed);
      return undefined;
    }
    if (claimed !== undefined) carried(rows);
    const inserted = rows;
    return batch.map((append, i) => {
      const [position, version, recorded] = inserted[i + 1]?.[0] ?? [];
      if (position !== null && position !== undefined) {
        const outcome = { outcome: Outcome.appended, version_after: Number(version) + 1, last_pos: Number(position) };
        noteAppended(outcome);
        return () => settle(append, outcome, recordedAt);
      }
      if (recorded === 'f' && version !== undefined && version !== null) {
        const conflict = { outcome: Outcome.versionConflict, version_after: Number(version), last_pos: null };
        return () => settle(append, conflict, recordedAt);
      }
      // A stream with a streams row: append_event decides, after the batch.
      return async () => {
        const [alone] = await writeAndSignal([append]);
        return (alone as () => AppendResult | Promise<AppendResult>)();
      };
    });
  };

  const writeBatch = async (
    batch: readonly PreparedAppend[],
  ): Promise<(() => AppendResult | Promise<AppendResult>)[]> => {
    if (inline.length > 0) return writeBatchInline(batch);
    const recordedAt = now();
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only && only.events.length === 1) {
      const parameters = oneEventParameters(only, isoTime(recordedAt));
      let row = await appendOneFast(parameters);
      if (!row) {
        const [one] = await write<{ r: number[] }>(appendOneName, APPEND_ONE, parameters);
        const [outcome, versionAfter, lastPosition] = (one as { r: number[] }).r as [number, number, number];
        row = { outcome, version_after: versionAfter, last_pos: lastPosition };
      }
      noteAppended(row);
      return [() => settle(only, row, recordedAt)];
    }
    if (batch.every((append) => append.events.length === 1)) {
      const outcomes = await writeOneEventBatch(batch, recordedAt);
      if (outcomes) return outcomes;
    }
    let rows: AppendOutcomeRow[];
    try {
      rows = await write<AppendOutcomeRow>(appendName, APPEND, appendParameters(batch, recordedAt));
    } catch (error) {
      // The whole batch rolled back. If one append broke the statement (not the
      // connection), write each alone so that only that one fails.
      if (batch.length === 1 || isConnectionFailure((error as { cause?: unknown }).cause)) throw error;
      const outcomes: (() => AppendResult | Promise<AppendResult>)[] = [];
      for (const append of batch) {
        try {
          const [settleOne] = await writeBatch([append]);
          outcomes.push(settleOne as () => AppendResult | Promise<AppendResult>);
        } catch (single) {
          outcomes.push(() => Promise.reject(single));
        }
      }
      return outcomes;
    }
    for (const row of rows) noteAppended(row);
    return batch.map((append, i) => () => settle(append, rows[i] as AppendOutcomeRow, recordedAt));
  };

  /** After a batch committed: wake this process's runners, then (coalesced) the others. */
  const signalAppends = () => {
    if (appendedHead <= signalledHead) return;
    signalledHead = appendedHead;
    for (const listener of listeners) listener(appendedHead);
    if (notifyAppends) notifyOthers();
  };
  const noteAppended = (row: AppendOutcomeRow) => {
    if (row.outcome === Outcome.appended && (row.last_pos as number) > appendedHead)
      appendedHead = row.last_pos as number;
  };
  const writeAndSignal = async (batch: readonly PreparedAppend[]) => {
    const outcomes = await writeBatch(batch);
    signalAppends();
    return outcomes;
  };

  const batcher = new AppendBatcher<AppendResult>(writeAndSignal, maxBatch, WRITE_SLOTS);

  let closed = false;
  const open = () => {
    if (closed) throw new StoreClosedError();
  };

  const streamState = async (streamId: string, client?: pg.PoolClient): Promise<StreamStateRow> => {
    if (client) {
      const result = await client.query<StreamStateRow>({ text: STREAM_STATE, values: [streamId], types: typeParsers });
      return result.rows[0] as StreamStateRow;
    }
    return (await query<StreamStateRow>('stream-state', STREAM_STATE, [streamId]))[0] as StreamStateRow;
  };

  /** Removes events, remembering the highest removed position so that the head never moves back. */
  const deleteEvents = async (client: pg.PoolClient, streamId: string, before: number) => {
    await client.query(
      `WITH gone AS (DELETE FROM ${s}.events WHERE stream_id = $1 AND stream_version < $2 RETURNING position)
       INSERT INTO ${s}.deleted_head (position) SELECT max(position) FROM gone HAVING max(position) IS NOT NULL
       ON CONFLICT (only_row) DO UPDATE SET position = greatest(${s}.deleted_head.position, excluded.position)`,
      [streamId, before],
    );
  };

  /**
   * One statement, so the state and the events come from one snapshot. The
   * first row holds the stream's version and tombstone only; each following
   * row is `null, null` and an event's `EVENT_ROW_COLUMNS` (no stream id, no
   * repeated state: each field costs the driver a string).
   */
  const readStreamSql = (direction: 'ASC' | 'DESC') => `WITH state AS (${STREAM_STATE})
    (SELECT state.version, state.tombstoned, NULL::bigint, NULL::text, NULL::bigint, NULL::text, NULL::integer,
            NULL::json, NULL::json, NULL::bigint
       FROM state)
    UNION ALL
    (SELECT NULL::bigint, NULL::boolean, ${EVENT_ROW_COLUMNS(s)}
       FROM ${s}.events
      WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3
      ORDER BY stream_version ${direction} LIMIT $4)`;
  const READ_FORWARDS = readStreamSql('ASC');
  const READ_BACKWARDS = readStreamSql('DESC');

  const store: PostgresEventStore = {
    pool,
    schema: schemaName,

    // Not async: the batcher's promise is handed back as it is (no extra hops);
    // invalid input still rejects rather than throws.
    append(streamId: string, events: readonly EventToAppend[], appendOptions?: AppendOptions) {
      try {
        open();
        return batcher.enqueue(prepareAppend(streamId, events, appendOptions, limits));
      } catch (error) {
        return Promise.reject(error);
      }
    },

    async readStream(streamId: string, readOptions?: ReadStreamOptions): Promise<ReadStreamResult> {
      open();
      assertStreamId(streamId, limits);
      const { from, to, direction, limit } = normalizeReadStream(readOptions);
      // One statement, so the version and the events come from one snapshot.
      let rows: unknown[][];
      try {
        rows = (
          await pool.query<unknown[]>({
            name: statementName(schemaName, `read-stream-${direction}`),
            text: direction === 'forwards' ? READ_FORWARDS : READ_BACKWARDS,
            values: [streamId, from, to, limit],
            types: typeParsers,
            rowMode: 'array',
          })
        ).rows;
      } catch (error) {
        throw toStorageError(error);
      }
      // The state row has no position; the events' rows come in their order.
      let state: unknown[] | undefined;
      const events: RecordedEvent[] = [];
      for (const row of rows) {
        if (row[2] === null) state = row;
        else events.push(eventOfRow(row, 2, streamId));
      }
      if (state?.[1]) throw new StreamDeletedError(streamId);
      const version = (state?.[0] as number | null | undefined) ?? 0;
      if (version === 0) return { streamId, exists: false, version: 0, events: [] };
      return { streamId, exists: true, version, events };
    },

    // The caller names the union it expects; the store yields what was stored, unchecked (see `EventStore.readAll`).
    async *readAll<E extends Event = Event>(readOptions?: ReadAllOptions): AsyncGenerator<RecordedOf<E>> {
      open();
      const { after, limit, types, categories, batchSize } = normalizeReadAll(readOptions);
      const filters: string[] = [];
      const values: unknown[] = [];
      if (types) {
        values.push(types);
        filters.push(`AND type = ANY ($${values.length + 1}::text[])`);
      }
      if (categories) {
        values.push(categories);
        filters.push(`AND category = ANY ($${values.length + 1}::text[])`);
      }
      const limitParameter = `$${values.length + 2}`;
      // Rows as arrays: the stream id, then the event's EVENT_ROW_COLUMNS.
      const text = `SELECT stream_id, ${EVENT_ROW_COLUMNS(s)} FROM ${s}.events WHERE position > $1 ${filters.join(' ')}
        ORDER BY position LIMIT ${limitParameter}`;
      const name = statementName(schemaName, `read-all-${types ? 't' : ''}${categories ? 'c' : ''}`);
      let cursor = after;
      let remaining = limit;
      while (remaining > 0) {
        open();
        const page = Math.min(batchSize, remaining);
        let rows: unknown[][];
        try {
          rows = (
            await pool.query<unknown[]>({
              name,
              text,
              values: [cursor, ...values, page],
              types: typeParsers,
              rowMode: 'array',
            })
          ).rows;
        } catch (error) {
          throw toStorageError(error);
        }
        if (rows.length === 0) return;
        for (const row of rows) yield eventOfRow(row, 1, row[0] as string) as RecordedOf<E>;
        cursor = (rows[rows.length - 1] as unknown[])[1] as number;
        remaining -= rows.length;
        if (rows.length < page) return;
      }
    },

    async headPosition() {
      open();
      const rows = await query<{ head: number }>(
        'head',
        `SELECT greatest(coalesce((SELECT max(position) FROM ${s}.events), 0),
                         coalesce((SELECT position FROM ${s}.deleted_head), 0)) AS head`,
        [],
      );
      return rows[0]?.head ?? 0;
    },

    async streamInfo(streamId: string): Promise<StreamInfo | undefined> {
      open();
      assertStreamId(streamId, limits);
      const row = await streamState(streamId);
      if (row.version === 0 && !row.recorded) return undefined;
      return {
        streamId,
        exists: !row.tombstoned,
        version: row.version,
        truncatedBefore: row.truncated_before,
        tombstoned: row.tombstoned,
      };
    },

    async deleteStream(streamId: string, deleteOptions?: DeleteStreamOptions) {
      open();
      assertStreamId(streamId, limits);
      const { expected, mode } = normalizeDeleteStream(deleteOptions);
      await underAppendLock(async (client) => {
        const stream = await streamState(streamId, client);
        if (stream.tombstoned) throw new StreamDeletedError(streamId);
        if (stream.version === 0) throw new StreamNotFoundError(streamId);
        checkExpectedVersion(streamId, expected, stream.version);
        await deleteEvents(client, streamId, Number.MAX_SAFE_INTEGER);
        if (mode === 'hard') {
          await client.query(
            `INSERT INTO ${s}.streams (stream_id, version, truncated_before, tombstoned) VALUES ($1, $2, $3, true)
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
               truncated_before = excluded.truncated_before, tombstoned = true`,
            [streamId, stream.version, stream.version + 1],
          );
        } else {
          await client.query(`DELETE FROM ${s}.streams WHERE stream_id = $1`, [streamId]);
        }
      });
    },

    async truncateBefore(streamId: string, version: number) {
      open();
      assertStreamId(streamId, limits);
      const requested = assertIntegerOption(version, 'version', 1) as number;
      await underAppendLock(async (client) => {
        const stream = await streamState(streamId, client);
        if (stream.tombstoned) throw new StreamDeletedError(streamId);
        if (stream.version === 0) throw new StreamNotFoundError(streamId);
        const before = Math.min(requested, stream.version + 1);
        if (before <= stream.truncated_before) return;
        await deleteEvents(client, streamId, before);
        await client.query(
          `INSERT INTO ${s}.streams (stream_id, version, truncated_before) VALUES ($1, $2, $3)
           ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, truncated_before = excluded.truncated_before`,
          [streamId, stream.version, before],
        );
      });
    },

    stats: () => ({ ...batcher.stats, ...notifyStats }),

    onAppend(listener: (position: number) => void) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      await batcher.drained();
      listeners.clear();
      if (notifyTimer) clearTimeout(notifyTimer);
      notifyTimer = undefined;
      await notifying;
      writers.releaseAll();
      if (ownPool) await pool.end();
    },

    async dropSchema() {
      await batcher.drained();
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      } finally {
        await store.close();
      }
    },
  };
  return store;
}
