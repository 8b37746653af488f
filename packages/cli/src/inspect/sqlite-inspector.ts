import { type DeadLetterFilter, type DeadLetterStore, workflowEventTypes } from '@factline/core';
import { redriveDeadLetter } from '@factline/core/adapter';
import {
  getSqliteDeadLetterStore,
  getSqliteTracer,
  getSqliteTransport,
  readSqliteSchemaVersions,
} from '@factline/sqlite';
import Sqlite, { type Database } from 'better-sqlite3';
import { CliError } from '../cli-error.ts';
import { type DeadLetterOperator, type Inspector, parseEventColumns, type StoredEvent } from './inspector.ts';
import { noQueue, noQueueMessage } from './no-queue.ts';
import { projectionName } from './projection-name.ts';
import { type GroupRedriver, redrivingThrough } from './redriver.ts';
import { refuseOlderSchema, tracedComponents } from './schema-guard.ts';

interface EventRow {
  position: number;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  schema_version: number;
  data: string;
  metadata: string;
  recorded_at: number;
}

const eventColumns = 'position, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at';

const toEvent = (row: EventRow): StoredEvent => ({
  position: row.position,
  id: row.event_id,
  streamId: row.stream_id,
  streamVersion: row.stream_version,
  type: row.type,
  schemaVersion: row.schema_version,
  ...parseEventColumns(row.data, row.metadata),
  recordedAt: new Date(row.recorded_at),
});

/** Opens the file as it is: missing = an error (better-sqlite3 would create an empty one). */
export function openSqliteFile(path: string, readonly: boolean): Database {
  try {
    const db = new Sqlite(path, { readonly, fileMustExist: true });
    // A read waits for a writer's checkpoint at most this long instead of failing at once.
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (error) {
    throw new CliError(`cannot open SQLite file ${path}: ${(error as Error).message}`);
  }
}

/**
 * Reads a Factline SQLite file through a read-only connection. In WAL mode
 * (every Factline file) a reader never blocks the application's writer, and
 * sees one consistent snapshot per statement.
 *
 * @example
 * const inspector = openSqliteInspector('orders.db');
 * console.log(await inspector.listStreams({ limit: 10 }));
 */
export function openSqliteInspector(path: string): Inspector {
  const db = openSqliteFile(path, true);
  const has = (table: string) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  if (!has('factline_events')) {
    db.close();
    throw new CliError(`${path} holds no Factline event store (no factline_events table)`);
  }
  // The head marker rows (empty stream id) keep the head position after deletions; reads skip them.
  const sql = {
    streams: db.prepare(
      `SELECT stream_id, category, MAX(stream_version) AS version, COUNT(*) AS events, MAX(recorded_at) AS last
       FROM factline_events WHERE stream_id > ? AND (? IS NULL OR category = ?)
       GROUP BY stream_id ORDER BY stream_id LIMIT ?`,
    ),
    // A prefix is a range of the (stream_id, stream_version) index: from it to it followed by the highest code point.
    prefixed: db.prepare(
      `SELECT stream_id, category, MAX(stream_version) AS version, COUNT(*) AS events, MAX(recorded_at) AS last
       FROM factline_events WHERE stream_id >= ? AND stream_id <> ? AND stream_id < ? || char(1114111)
       AND (? IS NULL OR category = ?)
       GROUP BY stream_id ORDER BY stream_id LIMIT ?`,
    ),
    stream: db.prepare(
      `SELECT ${eventColumns} FROM factline_events WHERE stream_id = ? AND stream_version >= ?
       ORDER BY stream_version LIMIT ?`,
    ),
    exists: db.prepare("SELECT 1 FROM factline_events WHERE stream_id = ? AND stream_id <> '' LIMIT 1"),
    all: db.prepare(
      `SELECT ${eventColumns} FROM factline_events WHERE position > ? AND stream_id <> '' ORDER BY position LIMIT ?`,
    ),
    head: db.prepare('SELECT COALESCE(MAX(position), 0) AS head FROM factline_events'),
    // An instance's first record is the input that started it, or the park of that input.
    instances: db
      .prepare(
        `SELECT stream_id FROM factline_events WHERE stream_version = 1 AND type IN (?, ?)
         AND (? IS NULL OR category = ?) AND (? IS NULL OR stream_id > ?) ORDER BY stream_id LIMIT ?`,
      )
      .pluck(),
  };
  const head = () => (sql.head.get() as { head: number }).head;
  // Opened at the first read of dead letters (opening a store migrates: refused on a file an older Factline
  // wrote, where the other reads still work).
  let deadLetterStore: DeadLetterStore | undefined;
  const deadLetters = () => {
    if (!has('factline_dead_letters')) return undefined;
    if (deadLetterStore === undefined) {
      refuseOlderSchema(path, readSqliteSchemaVersions(db), ['consumer']);
      deadLetterStore = getSqliteDeadLetterStore({ database: db });
    }
    return deadLetterStore;
  };

  return {
    async listStreams({ limit, after, category, prefix }) {
      const rows = (
        prefix
          ? sql.prefixed.all(
              after !== undefined && after > prefix ? after : prefix,
              after ?? '',
              prefix,
              category ?? null,
              category ?? null,
              limit,
            )
          : sql.streams.all(after ?? '', category ?? null, category ?? null, limit)
      ) as {
        stream_id: string;
        category: string;
        version: number;
        events: number;
        last: number;
      }[];
      return rows.map((r) => ({
        streamId: r.stream_id,
        category: r.category,
        version: r.version,
        events: r.events,
        lastRecordedAt: new Date(r.last),
      }));
    },
    async readStream(streamId, { from, limit }) {
      if (!sql.exists.get(streamId)) return undefined;
      return (sql.stream.all(streamId, from, limit) as EventRow[]).map(toEvent);
    },
    async readAll(position, limit) {
      return (sql.all.all(position, limit) as EventRow[]).map(toEvent);
    },
    async headPosition() {
      return head();
    },
    async outboxStatus() {
      if (!has('factline_outbox')) {
        return { present: false, waiting: 0, oldestEnqueuedAt: null, oldestAgeMs: null, topics: [] };
      }
      const rows = db
        .prepare(
          'SELECT topic, COUNT(*) AS waiting, MIN(created_at) AS oldest FROM factline_outbox GROUP BY topic ORDER BY topic',
        )
        .all() as { topic: string; waiting: number; oldest: number }[];
      // created_at was read off the clock of a process on this machine: this one's.
      const now = Date.now();
      const topics = rows.map((r) => ({
        topic: r.topic,
        waiting: r.waiting,
        oldestEnqueuedAt: new Date(r.oldest),
        oldestAgeMs: Math.max(0, now - r.oldest),
      }));
      const oldest = Math.min(...rows.map((r) => r.oldest));
      return {
        present: true,
        waiting: rows.reduce((sum, r) => sum + r.waiting, 0),
        oldestEnqueuedAt: rows.length > 0 ? new Date(oldest) : null,
        oldestAgeMs: rows.length > 0 ? Math.max(0, now - oldest) : null,
        topics,
      };
    },
    async projections() {
      if (!has('factline_projections')) return [];
      const at = head();
      const paused = new Set(
        has('factline_projection_controls')
          ? (
              db.prepare('SELECT name FROM factline_projection_controls WHERE paused = 1').all() as { name: string }[]
            ).map((r) => r.name)
          : [],
      );
      // The live version is kept by projection name, a checkpoint by name and version (`name@v2`); a file
      // migrated before versions were kept has no table for them (every projection at version 1).
      const live = new Map(
        has('factline_projection_versions')
          ? (
              db.prepare('SELECT name, live_version FROM factline_projection_versions').all() as {
                name: string;
                live_version: number;
              }[]
            ).map((r) => [r.name, r.live_version])
          : [],
      );
      const rows = db
        .prepare(
          `SELECT p.name, p.position, p.updated_at,
             (SELECT COUNT(*) FROM factline_parked k WHERE k.projection = p.name) AS parked
           FROM factline_projections p ORDER BY p.name`,
        )
        .all() as { name: string; position: number; updated_at: number; parked: number }[];
      // updated_at was read off the clock of a process on this machine: this one's.
      const now = Date.now();
      return rows.map((r) => ({
        name: r.name,
        position: r.position,
        head: at,
        lag: Math.max(0, at - r.position),
        updatedAt: new Date(r.updated_at),
        checkpointAgeMs: Math.max(0, now - r.updated_at),
        liveVersion: live.get(projectionName(r.name)) ?? 1,
        parked: r.parked,
        paused: paused.has(projectionName(r.name)),
      }));
    },
    async deadLetters(filter: DeadLetterFilter) {
      return deadLetters()?.list(filter) ?? [];
    },
    async deadLetter(id) {
      return deadLetters()?.get(id);
    },
    trace(correlationId, options) {
      refuseOlderSchema(path, readSqliteSchemaVersions(db), tracedComponents);
      return getSqliteTracer({ database: db }).traceOperation(correlationId, options);
    },
    async workflowInstances(workflow, { after, limit }) {
      const name = workflow ?? null;
      const from = after ?? null;
      return sql.instances.all(
        workflowEventTypes.input,
        workflowEventTypes.parked,
        name,
        name,
        from,
        from,
        limit,
      ) as string[];
    },
    async close() {
      db.close();
    },
  };
}

/**
 * Changes dead letters in a SQLite file: a redrive queues the message again
 * for its consumer group on the file's SQL transport, which the application's
 * consumers poll; with `redriver` (the application's messages travel over a
 * broker) it goes through the broker instead, the message first, then the
 * record marked redriven.
 *
 * @example
 * const operator = openSqliteDeadLetterOperator('orders.db');
 */
export function openSqliteDeadLetterOperator(path: string, redriver?: GroupRedriver): DeadLetterOperator {
  const db = openSqliteFile(path, false);
  const has = (table: string) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  // Opening a store migrates: on a file the application never gave dead letters (another file, a typo)
  // that would create Factline's tables in it. The operator works only where they are.
  if (!has('factline_dead_letters')) {
    db.close();
    throw new CliError(`${path} holds no Factline dead letters (no factline_dead_letters table)`);
  }
  try {
    refuseOlderSchema(path, readSqliteSchemaVersions(db), ['consumer', 'transport']);
  } catch (error) {
    db.close();
    throw error;
  }
  const store = getSqliteDeadLetterStore({ database: db });
  if (redriver) {
    return redrivingThrough(store, redriver, () => {
      db.close();
    });
  }
  // No SQL transport in the file (the application's messages travel over a broker): no queue to redrive to.
  const transport = has('factline_transport_groups') ? getSqliteTransport({ database: db }) : undefined;
  const groupQuery = transport
    ? db.prepare('SELECT 1 FROM factline_transport_groups WHERE topic = ? AND group_name = ?')
    : undefined;
  const group = { get: (topic: string, consumer: string) => groupQuery?.get(topic, consumer) };
  return {
    get: (id) => store.get(id),
    list: (filter) => store.list(filter),
    async cannotRedrive(record) {
      return group.get(record.topic, record.consumer) ? undefined : noQueueMessage(record);
    },
    async redrive(record, at) {
      // A group without a queue here (a broker transport) would take the message nowhere.
      if (!transport || !group.get(record.topic, record.consumer)) throw noQueue(record);
      return redriveDeadLetter(store, record, at, () =>
        transport.redeliver(record.topic, record.consumer, [record.message]),
      );
    },
    async discard(record) {
      return store.update({ ...record, state: 'discarded' });
    },
    async close() {
      await transport?.close();
      db.close();
    },
  };
}
