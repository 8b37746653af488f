import type pg from 'pg';
import { quoteSchema } from '../migrations.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { typeParsers } from './row-codec.ts';
import { appendLockKey, ExpectedCode } from './schema.ts';

/** The stored-event shape, named as core's `StoredEvent` so rows convert without copying field by field. */
const EVENT_COLUMNS = `position, event_id AS id, stream_id AS "streamId", stream_version AS "streamVersion", type,
  schema_version AS "schemaVersion", data, metadata, recorded_at AS "recordedAt"`;

/**
 * An event as its read statements return it (from some column on, see
 * `eventOfRow`): position, id, version, type, schema version (null for 1),
 * data, metadata (null for `{}`), recorded at (epoch milliseconds). Every
 * text field costs the driver a string, so defaults travel as nulls and the
 * time as a number.
 */
const eventRowColumns = (s: string) => `${s}.events.position, event_id, stream_version, type,
  NULLIF(schema_version, 1), data, CASE WHEN metadata::text = '{}' THEN NULL ELSE metadata END,
  floor(extract(epoch FROM recorded_at) * 1000)::bigint`;

/** The statements of one store's schema: their texts and, for the prepared ones, their names. */
export type StoreStatements = ReturnType<typeof storeStatements>;

/** Builds the store's statements for `schemaName` (quoted into every text). */
export function storeStatements(schemaName: string) {
  const s = quoteSchema(schemaName);
  const name = (part: string) => statementName(schemaName, part);

  /** A stream's `StreamStateRow`; `$1` is the stream id. */
  const streamState = `SELECT greatest(coalesce((SELECT max(e.stream_version) FROM ${s}.events e WHERE e.stream_id = $1), 0),
           coalesce(st.version, 0)) AS version,
         coalesce(st.truncated_before, 1) AS "truncatedBefore",
         coalesce(st.tombstoned, false) AS tombstoned,
         st.stream_id IS NOT NULL AS recorded
    FROM (SELECT 1) AS one LEFT JOIN ${s}.streams st ON st.stream_id = $1`;

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

  const notifyHead = {
    name: name('notify-head'),
    text: `SELECT head, pg_notify($1, head::text)
             FROM (SELECT coalesce(max(position), 0) AS head FROM ${s}.events) AS h`,
  };
  /**
   * Appends of one event go as a pipeline (one round trip, one implicit
   * transaction, no function call): first the append lock, then one of the
   * inserts above, run with a snapshot taken after the lock was granted. What
   * an insert cannot decide (a conflict found by the unique index, a stream
   * with a `streams` row, a stored id) goes to the append functions, which
   * decide as for any append. See docs/postgres.md, "The single-event append".
   * The last statement carries a notification (see append-signal.ts).
   */
  const fastAppend = [
    { name: name('fast-lock'), text: `SELECT pg_advisory_xact_lock${appendLockKey(s)}` },
    { name: name('fast-insert'), text: checkedInsert },
    { name: name('batch-insert'), text: reportedInsert },
    { name: name('first-insert'), text: firstInsert },
    { name: name('next-insert'), text: nextInsert },
    notifyHead,
  ] as const;

  /**
   * One statement, so the state and the events come from one snapshot. The
   * first row holds the stream's version and tombstone only; each following
   * row is `null, null` and an event's `eventRowColumns` (no stream id, no
   * repeated state: each field costs the driver a string).
   */
  const readStream = (direction: 'ASC' | 'DESC') => `WITH state AS (${streamState})
    (SELECT state.version, state.tombstoned, NULL::bigint, NULL::text, NULL::bigint, NULL::text, NULL::integer,
            NULL::json, NULL::json, NULL::bigint
       FROM state)
    UNION ALL
    (SELECT NULL::bigint, NULL::boolean, ${eventRowColumns(s)}
       FROM ${s}.events
      WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3
      ORDER BY stream_version ${direction} LIMIT $4)`;

  return {
    /** The schema, quoted for SQL text. */
    s,
    streamState,
    /** The batch append function, one array parameter per column (see `appendParameters`). */
    append: {
      name: name('append'),
      text: `SELECT outcome, version_after, last_pos
    FROM ${s}.append_events($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::text[], $6::text[],
                            $7::integer[], $8::text[], $9::text[], $10::timestamptz)`,
    },
    /** The one-event append function (see `oneEventParameters`); its row's `r` is `[outcome, version, position]`. */
    appendOne: { name: name('append-one'), text: `SELECT ${s}.append_event($1, $2, $3, $4, $5, $6, $7, $8, $9) AS r` },
    fastAppend,
    appendLock: `SELECT pg_advisory_xact_lock${appendLockKey(s)}`,
    notifyHead,
    readForwards: readStream('ASC'),
    readBackwards: readStream('DESC'),
    /** `readAll`'s page: rows as arrays, the stream id then the event's `eventRowColumns`. */
    readAll: (types: boolean, categories: boolean) => {
      const filters: string[] = [];
      let parameter = 1;
      if (types) filters.push(`AND type = ANY ($${++parameter}::text[])`);
      if (categories) filters.push(`AND category = ANY ($${++parameter}::text[])`);
      return {
        name: name(`read-all-${types ? 't' : ''}${categories ? 'c' : ''}`),
        text: `SELECT stream_id, ${eventRowColumns(s)} FROM ${s}.events WHERE position > $1 ${filters.join(' ')}
        ORDER BY position LIMIT $${parameter + 1}`,
      };
    },
    eventsById: `SELECT ${EVENT_COLUMNS} FROM ${s}.events WHERE event_id = ANY ($1::text[])`,
    head: `SELECT greatest(coalesce((SELECT max(position) FROM ${s}.events), 0),
                         coalesce((SELECT position FROM ${s}.deleted_head), 0)) AS head`,
    /** Removes a stream's events below a version, remembering the highest removed position so that the head never moves back. */
    deleteEvents: `WITH gone AS (DELETE FROM ${s}.events WHERE stream_id = $1 AND stream_version < $2 RETURNING position)
       INSERT INTO ${s}.deleted_head (position) SELECT max(position) FROM gone HAVING max(position) IS NOT NULL
       ON CONFLICT (only_row) DO UPDATE SET position = greatest(${s}.deleted_head.position, excluded.position)`,
    /** Records a stream's version, first version and tombstone. */
    recordStream: `INSERT INTO ${s}.streams (stream_id, version, truncated_before, tombstoned) VALUES ($1, $2, $3, $4)
       ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
         truncated_before = excluded.truncated_before, tombstoned = excluded.tombstoned`,
    forgetStream: `DELETE FROM ${s}.streams WHERE stream_id = $1`,
  };
}

/** Runs one of the store's statements on the pool, prepared under `part`'s name; rows parsed with `typeParsers`. */
export type StoreQuery = <R extends pg.QueryResultRow>(part: string, text: string, values: unknown[]) => Promise<R[]>;

export function createStoreQuery(pool: pg.Pool, schemaName: string): StoreQuery {
  return async <R extends pg.QueryResultRow>(part: string, text: string, values: unknown[]) => {
    try {
      const result = await pool.query<R>({ name: statementName(schemaName, part), text, values, types: typeParsers });
      return result.rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };
}
