import type { Database, Statement } from 'better-sqlite3';
import type { EventRow, StreamRow } from './row-codec.ts';

const EVENT_COLUMNS = `position, event_id AS id, stream_id AS streamId, stream_version AS streamVersion, type,
  schema_version AS schemaVersion, data, metadata, recorded_at AS recordedAt`;

/** The store's statements, prepared once on its connection. */
export interface StoreStatements {
  /** A stream's `StreamRow`; takes the stream id twice. */
  stream: Statement<[string, string], StreamRow>;
  /** (stream id, version, truncated before, tombstoned 0 or 1). */
  recordStream: Statement<unknown[]>;
  insertEvent: Statement<unknown[]>;
  eventById: Statement<[string], EventRow>;
  /** (stream id, from, to, limit) */
  readForwards: Statement<[string, number, number, number], EventRow>;
  readBackwards: Statement<[string, number, number, number], EventRow>;
  /** `readAll`'s page, with the filters asked for (JSON arrays), prepared on first use. */
  readAll(types: boolean, categories: boolean): Statement<unknown[], EventRow>;
  head: Statement<[], { head: number }>;
  deleteEvents: Statement<unknown[]>;
  deleteEventsBefore: Statement<unknown[]>;
  headMarker: Statement<unknown[]>;
  forgetStream: Statement<unknown[]>;
}

export function prepareStatements(db: Database): StoreStatements {
  const readAllStatements = new Map<string, Statement<unknown[], EventRow>>();
  return {
    stream: db.prepare<[string, string], StreamRow>(
      `SELECT MAX(COALESCE((SELECT MAX(stream_version) FROM factline_events WHERE stream_id = ?), 0),
                  COALESCE(s.version, 0)) AS version,
              COALESCE(s.truncated_before, 1) AS truncatedBefore,
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
    readAll(types: boolean, categories: boolean): Statement<unknown[], EventRow> {
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
    },
    head: db.prepare<[], { head: number }>('SELECT COALESCE(MAX(position), 0) AS head FROM factline_events'),
    deleteEvents: db.prepare('DELETE FROM factline_events WHERE stream_id = ?'),
    deleteEventsBefore: db.prepare('DELETE FROM factline_events WHERE stream_id = ? AND stream_version < ?'),
    // See stream-removal.ts: an invisible row that holds the highest position handed out.
    headMarker: db.prepare(
      `INSERT INTO factline_events (position, event_id, stream_id, stream_version, category, type, schema_version, data, metadata, recorded_at)
       VALUES (?, ?, '', ?, '', '', 1, 'null', '{}', ?)`,
    ),
    forgetStream: db.prepare('DELETE FROM factline_streams WHERE stream_id = ?'),
  };
}
