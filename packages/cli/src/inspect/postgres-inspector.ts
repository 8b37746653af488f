import { type DeadLetter, type DeadLetterFilter, workflowEventTypes } from '@factline/core';
import {
  createOperationTracer,
  deadLetterConditions,
  deadLetterFromJson,
  redriveDeadLetter,
} from '@factline/core/adapter';
import {
  getPostgresDeadLetterStore,
  getPostgresTransport,
  postgresTraceReader,
  readPostgresSchemaVersions,
} from '@factline/postgres';
import pg from 'pg';
import { CliError } from '../cli-error.ts';
import {
  type DeadLetterOperator,
  type Inspector,
  type OutboxTopicStatus,
  parseEventColumns,
  type StoredEvent,
} from './inspector.ts';
import { noQueue, noQueueMessage } from './no-queue.ts';
import { projectionName } from './projection-name.ts';
import { type GroupRedriver, redrivingThrough } from './redriver.ts';
import { refuseOlderSchema } from './schema-guard.ts';

interface EventRow {
  position: string;
  event_id: string;
  stream_id: string;
  stream_version: string;
  type: string;
  schema_version: number;
  data: string;
  metadata: string;
  recorded_at: Date;
}

const toEvent = (row: EventRow): StoredEvent => ({
  position: Number(row.position),
  id: row.event_id,
  streamId: row.stream_id,
  streamVersion: Number(row.stream_version),
  type: row.type,
  schemaVersion: row.schema_version,
  ...parseEventColumns(row.data, row.metadata),
  recordedAt: row.recorded_at,
});

const eventColumns = `position, event_id, stream_id, stream_version, type, schema_version, data::text AS data,
  metadata::text AS metadata, recorded_at`;

/** The schema name quoted, refused unless a plain identifier (as the adapter accepts). */
export function quoteSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new CliError(`--schema ${schema}: must be a lower-case SQL identifier (a-z, 0-9, _)`);
  }
  return `"${schema}"`;
}

/** A pool of at most two connections; `readOnly` makes every transaction on it read-only. */
export async function connectPostgres(url: string, readOnly: boolean): Promise<pg.Pool> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    connectionTimeoutMillis: 5000,
    ...(readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
  });
  // An idle connection dropped by the server is replaced on next use; never a crash.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
    return pool;
  } catch (error) {
    await pool.end().catch(() => undefined);
    const where = url.replace(/\/\/[^@/]*@/, '//');
    throw new CliError(`cannot connect to PostgreSQL at ${where}: ${(error as Error).message}`);
  }
}

/**
 * Reads a Factline PostgreSQL schema on connections whose transactions are
 * read-only (`default_transaction_read_only`): plain MVCC reads, which never
 * block the application's writes.
 *
 * @example
 * const inspector = await openPostgresInspector('postgres://app@127.0.0.1/app', 'factline');
 */
export async function openPostgresInspector(url: string, schema: string): Promise<Inspector> {
  const s = quoteSchema(schema);
  const pool = await connectPostgres(url, true);
  const has = async (table: string) =>
    (await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${s}.${table}`])).rows[0]
      ?.present === true;
  if (!(await has('events'))) {
    await pool.end();
    throw new CliError(`schema ${schema} holds no Factline event store (no events table)`);
  }
  const head = async () =>
    Number(
      (await pool.query<{ head: string }>(`SELECT COALESCE(MAX(position), 0) AS head FROM ${s}.events`)).rows[0]?.head,
    );
  // Made at a consumer's first start, perhaps after the dashboard opened: looked up until found.
  let deadLettersFound = false;
  const hasDeadLetters = async () => {
    deadLettersFound ||= await has('dead_letters');
    return deadLettersFound;
  };
  const tracer = createOperationTracer(postgresTraceReader(pool, s));

  return {
    async listStreams({ limit, after, category, prefix }) {
      const { rows } = await pool.query<{
        stream_id: string;
        category: string;
        version: string;
        events: string;
        last: Date;
      }>(
        `SELECT stream_id, MIN(category) AS category, MAX(stream_version) AS version, COUNT(*) AS events,
           MAX(recorded_at) AS last
         FROM ${s}.events WHERE stream_id > $1 AND ($2::text IS NULL OR category = $2)
           AND stream_id >= COALESCE($4, '') AND ($4::text IS NULL OR starts_with(stream_id, $4))
         GROUP BY stream_id ORDER BY stream_id LIMIT $3`,
        [after ?? '', category ?? null, limit, prefix || null],
      );
      return rows.map((r) => ({
        streamId: r.stream_id,
        category: r.category,
        version: Number(r.version),
        events: Number(r.events),
        lastRecordedAt: r.last,
      }));
    },
    async readStream(streamId, { from, limit }) {
      const exists = await pool.query(`SELECT 1 FROM ${s}.events WHERE stream_id = $1 LIMIT 1`, [streamId]);
      if (exists.rowCount === 0) return undefined;
      const { rows } = await pool.query<EventRow>(
        `SELECT ${eventColumns} FROM ${s}.events WHERE stream_id = $1 AND stream_version >= $2
         ORDER BY stream_version LIMIT $3`,
        [streamId, from, limit],
      );
      return rows.map(toEvent);
    },
    async readAll(position, limit) {
      const { rows } = await pool.query<EventRow>(
        `SELECT ${eventColumns} FROM ${s}.events WHERE position > $1 ORDER BY position LIMIT $2`,
        [position, limit],
      );
      return rows.map(toEvent);
    },
    headPosition: head,
    async outboxStatus() {
      if (!(await has('outbox'))) {
        return { present: false, waiting: 0, oldestEnqueuedAt: null, oldestAgeMs: null, topics: [] };
      }
      // Ages by the server's clock, which wrote created_at: this process's clock may disagree with it.
      const { rows } = await pool.query<{ topic: string; waiting: string; oldest: Date; age_ms: number }>(
        `SELECT topic, COUNT(*) AS waiting, MIN(created_at) AS oldest,
                greatest(0, extract(epoch FROM now() - MIN(created_at)) * 1000)::float8 AS age_ms
           FROM ${s}.outbox GROUP BY topic ORDER BY topic`,
      );
      const topics = rows.map((r) => ({
        topic: r.topic,
        waiting: Number(r.waiting),
        oldestEnqueuedAt: r.oldest,
        oldestAgeMs: r.age_ms,
      }));
      const oldest = topics.reduce<OutboxTopicStatus | null>(
        (o, t) => (o && o.oldestEnqueuedAt <= t.oldestEnqueuedAt ? o : t),
        null,
      );
      return {
        present: true,
        waiting: topics.reduce((n, t) => n + t.waiting, 0),
        oldestEnqueuedAt: oldest?.oldestEnqueuedAt ?? null,
        oldestAgeMs: oldest?.oldestAgeMs ?? null,
        topics,
      };
    },
    async projections() {
      if (!(await has('projections'))) return [];
      const at = await head();
      const versions = await has('projection_versions');
      const paused = new Set(
        (await has('projection_controls'))
          ? (await pool.query<{ name: string }>(`SELECT name FROM ${s}.projection_controls WHERE paused`)).rows.map(
              (r) => r.name,
            )
          : [],
      );
      // The live version is kept by projection name, a checkpoint by name and version (`name@v2`).
      const live = new Map(
        versions
          ? (
              await pool.query<{ name: string; live_version: number }>(
                `SELECT name, live_version FROM ${s}.projection_versions`,
              )
            ).rows.map((r) => [r.name, Number(r.live_version)])
          : [],
      );
      const { rows } = await pool.query<{
        name: string;
        position: string;
        updated_at: Date;
        age_ms: number;
        parked: string;
      }>(
        // The checkpoint's age by the server's clock, which wrote updated_at.
        `SELECT p.name, p.position, p.updated_at,
           greatest(0, extract(epoch FROM now() - p.updated_at) * 1000)::float8 AS age_ms,
           (SELECT COUNT(*) FROM ${s}.parked k WHERE k.projection = p.name) AS parked
         FROM ${s}.projections p ORDER BY p.name`,
      );
      return rows.map((r) => ({
        name: r.name,
        position: Number(r.position),
        head: at,
        lag: Math.max(0, at - Number(r.position)),
        updatedAt: r.updated_at,
        checkpointAgeMs: r.age_ms,
        liveVersion: live.get(projectionName(r.name)) ?? 1,
        parked: Number(r.parked),
        paused: paused.has(projectionName(r.name)),
      }));
    },
    async deadLetters(filter: DeadLetterFilter) {
      if (!(await hasDeadLetters())) return [];
      const c = deadLetterConditions(filter);
      const { rows } = await pool.query<{ record: string }>(
        `SELECT record::text AS record FROM ${s}.dead_letters
         WHERE state = $1 AND ($2::text IS NULL OR consumer = $2) AND ($3::text IS NULL OR topic = $3)
           AND ($4::text IS NULL OR message_type = $4)
         ORDER BY dead_lettered_at, id`,
        [c.state, c.consumer, c.topic, c.type],
      );
      return rows.map((r): DeadLetter => deadLetterFromJson(r.record));
    },
    async deadLetter(id) {
      if (!(await hasDeadLetters())) return undefined;
      const { rows } = await pool.query<{ record: string }>(
        `SELECT record::text AS record FROM ${s}.dead_letters WHERE id = $1`,
        [id],
      );
      return rows[0] && deadLetterFromJson(rows[0].record);
    },
    trace: (correlationId, options) => tracer.traceOperation(correlationId, options),
    async workflowInstances(workflow, { after, limit }) {
      // An instance's first record is the input that started it, or the park of that input.
      const { rows } = await pool.query<{ stream_id: string }>(
        `SELECT stream_id FROM ${s}.events WHERE stream_version = 1 AND type IN ($1, $2)
         AND ($3::text IS NULL OR category = $3) AND ($4::text IS NULL OR stream_id > $4)
         ORDER BY stream_id LIMIT $5`,
        [workflowEventTypes.input, workflowEventTypes.parked, workflow ?? null, after ?? null, limit],
      );
      return rows.map((r) => r.stream_id);
    },
    close: () => pool.end(),
  };
}

/**
 * Changes dead letters in a PostgreSQL schema: a redrive queues the message
 * again for its consumer group on the schema's SQL transport; with
 * `redriver` (the application's messages travel over a broker) it goes
 * through the broker instead (`redrivingThrough`).
 *
 * @example
 * const operator = await openPostgresDeadLetterOperator('postgres://app@127.0.0.1/app', 'factline');
 */
export async function openPostgresDeadLetterOperator(
  url: string,
  schema: string,
  redriver?: GroupRedriver,
): Promise<DeadLetterOperator> {
  const s = quoteSchema(schema);
  const pool = await connectPostgres(url, false);
  try {
    const has = async (table: string) =>
      (await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${s}.${table}`]))
        .rows[0]?.present === true;
    // Opening a store migrates: in a schema the application never gave dead letters (a mistyped --schema)
    // that would create Factline's tables. The operator works only where they are.
    if (!(await has('dead_letters'))) {
      throw new CliError(`schema ${schema} holds no Factline dead letters (no dead_letters table)`);
    }
    refuseOlderSchema(`schema ${schema}`, await readPostgresSchemaVersions(pool, schema), ['consumer', 'transport']);
    const store = await getPostgresDeadLetterStore({ pool, schema });
    if (redriver) return redrivingThrough(store, redriver, () => pool.end());
    // No SQL transport in the schema (the messages travel over a broker): no queue to redrive to.
    const transport = (await has('transport_groups'))
      ? await getPostgresTransport({ pool, schema, listen: false })
      : undefined;
    const hasQueue = async (record: DeadLetter) =>
      transport !== undefined &&
      ((
        await pool.query(`SELECT 1 FROM ${s}.transport_groups WHERE topic = $1 AND group_name = $2`, [
          record.topic,
          record.consumer,
        ])
      ).rowCount ?? 0) > 0;
    return {
      get: (id) => store.get(id),
      list: (filter) => store.list(filter),
      async cannotRedrive(record) {
        return (await hasQueue(record)) ? undefined : noQueueMessage(record);
      },
      async redrive(record, at) {
        if (!transport || !(await hasQueue(record))) throw noQueue(record);
        return redriveDeadLetter(store, record, at, () =>
          transport.redeliver(record.topic, record.consumer, [record.message]),
        );
      },
      async discard(record) {
        return store.update({ ...record, state: 'discarded' });
      },
      async close() {
        await transport?.close();
        await pool.end();
      },
    };
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}
