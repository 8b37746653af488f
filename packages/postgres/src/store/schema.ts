import { createHash } from 'node:crypto';
import type { PostgresMigration } from '../migrations.ts';

/**
 * The NOTIFY channel a store signals its appends on (see the store's
 * `notifyAppends`): `factline_appends_<schema>`, or a hash of the schema name
 * when that would pass PostgreSQL's 63-byte identifier limit.
 */
export function appendChannel(schema: string): string {
  const channel = `factline_appends_${schema}`;
  if (channel.length <= 63) return channel;
  return `factline_appends_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

/**
 * Every store write takes this transaction-level advisory lock first; it is
 * keyed by the events table's oid, so stores in different schemas do not
 * wait for each other. See docs/postgres.md, "Gap-free global order".
 */
export const appendLockKey = (schema: string) => `(5062401484197462016 + '${schema}.events'::regclass::oid::bigint)`;

/** What `append_events` reports for each append of a batch. */
export const Outcome = {
  appended: 1,
  versionConflict: 2,
  tombstoned: 3,
  idTaken: 4,
} as const;

/**
 * SQLSTATEs `append_refused` raises: the expected version does not hold (the
 * stream's version in the error's DETAIL), or the statement cannot tell (a
 * stream with a `streams` row, or an expected version the stream has not
 * reached): the append function decides.
 */
export const RefusedCode = { versionConflict: 'FLV01', undecided: 'FLU01' } as const;

/** `expectedVersion` as the append function takes it: a version (0 = no stream) or one of these. */
export const ExpectedCode = { any: -1, streamExists: -2 } as const;

export const eventStoreMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'events, streams, the position sequence and the batched append function',
    up: (s) => `
      -- CACHE 1 (the default) matters: with a per-session cache, positions would
      -- no longer follow the order in which appends take the append lock.
      CREATE SEQUENCE ${s}.events_position_seq AS bigint CACHE 1;

      CREATE TABLE ${s}.events (
        position bigint PRIMARY KEY,
        event_id text NOT NULL,
        stream_id text NOT NULL,
        stream_version bigint NOT NULL,
        category text NOT NULL,
        type text NOT NULL,
        schema_version integer NOT NULL,
        data json NOT NULL,
        metadata json NOT NULL,
        recorded_at timestamptz NOT NULL,
        CONSTRAINT events_event_id_key UNIQUE (event_id),
        CONSTRAINT events_stream_key UNIQUE (stream_id, stream_version)
      );
      ALTER SEQUENCE ${s}.events_position_seq OWNED BY ${s}.events.position;

      -- Only streams that were truncated or hard-deleted have a row; a stream's
      -- version is otherwise its highest stream_version in events.
      CREATE TABLE ${s}.streams (
        stream_id text PRIMARY KEY,
        version bigint NOT NULL,
        truncated_before bigint NOT NULL DEFAULT 1,
        tombstoned boolean NOT NULL DEFAULT false
      );

      -- The highest position deletions removed, so that headPosition never moves back.
      CREATE TABLE ${s}.deleted_head (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        position bigint NOT NULL
      );

      -- Appends a batch of appends in one call (one round trip, one commit).
      -- Append i writes events first_i .. first_i + a_counts[i] - 1 of the e_*
      -- arrays. Each append is checked and written on its own: a conflict
      -- skips that append only. Returns one row per append, in order.
      CREATE FUNCTION ${s}.append_events(
        a_streams text[], a_categories text[], a_expected bigint[], a_counts integer[],
        e_ids text[], e_types text[], e_schema_versions integer[], e_data text[], e_metadata text[],
        p_recorded_at timestamptz
      ) RETURNS TABLE (outcome integer, version_after bigint, last_pos bigint)
      LANGUAGE plpgsql AS $fn$
      DECLARE
        v_i integer;
        v_n integer;
        v_first integer := 1;
        v_current bigint;
        v_tombstoned boolean;
        v_expected bigint;
        v_inserted integer;
      BEGIN
        PERFORM pg_advisory_xact_lock${appendLockKey(s)};
        FOR v_i IN 1 .. coalesce(array_length(a_streams, 1), 0) LOOP
          v_n := a_counts[v_i];
          SELECT greatest(coalesce(st.version, 0), coalesce(
                   (SELECT max(e.stream_version) FROM ${s}.events e WHERE e.stream_id = a_streams[v_i]), 0)),
                 coalesce(st.tombstoned, false)
            INTO v_current, v_tombstoned
            FROM (SELECT 1) AS one LEFT JOIN ${s}.streams st ON st.stream_id = a_streams[v_i];
          v_expected := a_expected[v_i];
          last_pos := NULL;
          version_after := v_current;
          IF v_tombstoned THEN
            outcome := 3;
          ELSIF (v_expected >= 0 AND v_current <> v_expected) OR (v_expected = -2 AND v_current = 0) THEN
            outcome := 2;
          ELSE
            -- No lookup of the ids first: a stored id shows as a row not inserted
            -- (ON CONFLICT DO NOTHING), and then this append's rows are taken back.
            INSERT INTO ${s}.events (position, event_id, stream_id, stream_version, category, type,
                                     schema_version, data, metadata, recorded_at)
            SELECT nextval('${s}.events_position_seq'), u.id, a_streams[v_i], v_current + u.ord,
                   a_categories[v_i], u.type, u.sv, u.data::json, u.metadata::json, p_recorded_at
            FROM unnest(e_ids[v_first : v_first + v_n - 1], e_types[v_first : v_first + v_n - 1],
                        e_schema_versions[v_first : v_first + v_n - 1], e_data[v_first : v_first + v_n - 1],
                        e_metadata[v_first : v_first + v_n - 1])
                 WITH ORDINALITY AS u(id, type, sv, data, metadata, ord)
            ON CONFLICT (event_id) DO NOTHING;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            IF v_inserted = v_n THEN
              outcome := 1;
              version_after := v_current + v_n;
              last_pos := currval('${s}.events_position_seq');
            ELSE
              DELETE FROM ${s}.events e WHERE e.stream_id = a_streams[v_i] AND e.stream_version > v_current;
              outcome := 4;
            END IF;
          END IF;
          RETURN NEXT;
          v_first := v_first + v_n;
        END LOOP;
      END
      $fn$;

      -- The common case on its own: one append of one event. Same checks and
      -- outcomes as append_events, without arrays, slicing or a loop; it returns
      -- ARRAY[outcome, version_after, last_pos] (a plain value is cheaper to hand
      -- back than a row). Under the append lock nothing else inserts, so a lookup
      -- of the id replaces ON CONFLICT's speculative insertion (measured ~10%).
      CREATE FUNCTION ${s}.append_event(
        p_stream text, p_category text, p_expected bigint, p_id text, p_type text,
        p_schema_version integer, p_data text, p_metadata text, p_recorded_at timestamptz
      ) RETURNS bigint[] LANGUAGE plpgsql AS $fn$
      DECLARE
        v_current bigint;
        v_recorded bigint;
        v_tombstoned boolean := false;
        v_position bigint;
      BEGIN
        PERFORM pg_advisory_xact_lock${appendLockKey(s)};
        SELECT max(e.stream_version) INTO v_current FROM ${s}.events e WHERE e.stream_id = p_stream;
        SELECT st.version, st.tombstoned INTO v_recorded, v_tombstoned FROM ${s}.streams st WHERE st.stream_id = p_stream;
        v_current := greatest(coalesce(v_current, 0), coalesce(v_recorded, 0));
        IF v_tombstoned THEN
          RETURN ARRAY[3, v_current, 0];
        END IF;
        IF (p_expected >= 0 AND v_current <> p_expected) OR (p_expected = -2 AND v_current = 0) THEN
          RETURN ARRAY[2, v_current, 0];
        END IF;
        IF EXISTS (SELECT 1 FROM ${s}.events e WHERE e.event_id = p_id) THEN
          RETURN ARRAY[4, v_current, 0];
        END IF;
        INSERT INTO ${s}.events (position, event_id, stream_id, stream_version, category, type,
                                 schema_version, data, metadata, recorded_at)
        VALUES (nextval('${s}.events_position_seq'), p_id, p_stream, v_current + 1, p_category, p_type,
                p_schema_version, p_data::json, p_metadata::json, p_recorded_at)
        RETURNING position INTO v_position;
        RETURN ARRAY[1, v_current + 1, v_position];
      END
      $fn$;
    `,
  },
  {
    version: 2,
    description: 'append_refused: how the single-event insert says why it did not apply',
    up: (s) => `
      -- Called by the single-event insert only when it does not apply, so that
      -- the caller learns why in the same round trip (see the store's
      -- fastAppend); never on the path of an insert that applies.
      CREATE FUNCTION ${s}.append_refused(p_undecided boolean, p_version bigint) RETURNS bigint
      LANGUAGE plpgsql AS $fn$
      BEGIN
        IF p_undecided THEN
          RAISE EXCEPTION 'the single-event insert cannot decide this append' USING ERRCODE = '${RefusedCode.undecided}';
        END IF;
        RAISE EXCEPTION 'the expected version does not hold' USING ERRCODE = '${RefusedCode.versionConflict}',
          DETAIL = p_version::text;
      END
      $fn$;
    `,
  },
  {
    version: 3,
    description: 'events by correlation id, for traceOperation',
    // The expression must read exactly as the trace's WHERE clause does, or the planner will not use it.
    up: (s) => `
      CREATE INDEX events_correlation ON ${s}.events ((metadata->>'correlationId'));
    `,
  },
];
