import type { Migration } from '../migrations.ts';

/**
 * The event store's tables. A stream's version is the highest
 * `stream_version` of its events (one index seek), so an append writes only its
 * event rows. `factline_streams` holds just the streams that need more:
 * tombstoned ones, and truncated ones (whose version must survive the
 * removal of their events).
 *
 * `position` is the rowid: writers are serialized by SQLite's write lock, so
 * positions become visible in commit order and a catch-up reader can never
 * skip one. Deletions that remove the newest event leave a marker row so that
 * no position is ever handed out twice (see `keepHeadPosition`).
 */
export const eventStoreMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'events and streams',
    up: `
      CREATE TABLE factline_streams (
        stream_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        truncated_before INTEGER NOT NULL DEFAULT 1,
        tombstoned INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      CREATE TABLE factline_events (
        position INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        stream_version INTEGER NOT NULL,
        category TEXT NOT NULL,
        type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        data TEXT NOT NULL,
        metadata TEXT NOT NULL,
        recorded_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX factline_events_event_id ON factline_events (event_id);
      CREATE UNIQUE INDEX factline_events_stream ON factline_events (stream_id, stream_version);
    `,
  },
  {
    version: 2,
    description: 'events by correlation id, for traceOperation',
    // The expression must read exactly as the trace's WHERE clause does, or SQLite will not use it.
    up: `
      CREATE INDEX factline_events_correlation ON factline_events (json_extract(metadata, '$.correlationId'));
    `,
  },
];
