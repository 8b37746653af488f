import { createHash } from 'node:crypto';
import {
  encodeMessages,
  type Message,
  type MessageInput,
  type OutboxRelayStats,
  type SchemaRegistry,
  type Transport,
  ValidationError,
} from '@factline/core';
import {
  assertIntegerOption,
  assertName,
  messageFromJson,
  type Outbox,
  type OutboxRelayOptions,
  prepareMessages,
  startOutboxRelay,
} from '@factline/core/adapter';
import type pg from 'pg';
import { ChannelListener, listenFailureReporter } from '../channel-listener.ts';
import { dedicatedConnectionSettings } from '../connection-settings.ts';
import { advisoryLockKey, createPostgresLeases } from '../lease.ts';
import { migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresOutboxOptions, checkPostgresOutboxRelayOptions } from '../options.ts';
import { missingTablesError, toStorageError } from '../pg-errors.ts';
import { assertInTransaction } from './transaction-guard.ts';

export const outboxMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'transactional outbox',
    up: (s) => `
      -- Messages written in the application's own transactions, deleted once published.
      CREATE TABLE ${s}.outbox (
        seq bigserial PRIMARY KEY,
        topic text NOT NULL,
        message_id text NOT NULL UNIQUE,
        key text NOT NULL,
        message json NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 2,
    description: 'outbox entries by correlation id, for traceOperation',
    up: (s) => `
      CREATE INDEX outbox_correlation ON ${s}.outbox ((message->'metadata'->>'correlationId'));
    `,
  },
];

export interface PostgresOutboxOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** A node-postgres pool to use instead of opening one; the outbox never ends it. */
  pool?: pg.Pool;
  /** The schema holding the `outbox` table; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool the outbox opens. Default 4. */
  poolSize?: number;
  /** Clock for `createdAt` of messages built from inputs; defaults to `Date.now`. */
  now?: () => number;
  /**
   * The application's message types: `enqueue` validates each message of a
   * defined type (awaiting asynchronous validators) before writing anything,
   * and stamps its `factline-schema-version` header (core's `encodeMessages`).
   */
  schemas?: SchemaRegistry;
}

/** What `enqueue` needs of a client: a pool client, a `pg.Client`, inside the caller's transaction. */
export interface OutboxQueryable {
  query(config: pg.QueryConfig): Promise<pg.QueryResult>;
}

export interface PostgresOutbox {
  readonly pool: pg.Pool;
  readonly schema: string;
  /**
   * Writes `messages` to the outbox through `client`, in one statement, as
   * part of the caller's open transaction: they are published only if it
   * commits. A pool, or a client outside a transaction, is a
   * `ValidationError` (the messages would commit apart from the caller's rows).
   * Inputs without an id get one (UUIDv7). Returns the messages as they will
   * be published.
   */
  enqueue(client: OutboxQueryable, topic: string, messages: readonly (Message | MessageInput)[]): Promise<Message[]>;
  /** Rows waiting to be published (committed ones). */
  pending(): Promise<number>;
  /** Ends the pool if the outbox opened it. */
  close(): Promise<void>;
}

export interface PostgresOutboxRelayOptions extends OutboxRelayOptions {
  /** How often a relay standing by tries to take the lease, and the holder checks its lease connection, ms. Default 1000. */
  leaseCheckMs?: number;
  /** `application_name` of the lease connection. Default `'factline-outbox-relay'`. */
  leaseApplicationName?: string;
  /** Settings of the lease connection. Default: the pool's settings. */
  connection?: pg.ClientConfig;
}

/** What the relay reports about itself (the same on every adapter). */
export type PostgresOutboxRelayStats = OutboxRelayStats;

export interface PostgresOutboxRelay {
  /** Resolves once the first lease check ran: the relay then holds the lease or stands by. */
  ready(): Promise<void>;
  /** Stops after the round in flight and gives up the lease. */
  stop(): Promise<void>;
  stats(): PostgresOutboxRelayStats;
}

const revive = messageFromJson;

/** The NOTIFY channel enqueues signal on (delivered at commit only). */
export function outboxChannel(schema: string): string {
  const channel = `factline_outbox_${schema}`;
  if (channel.length <= 63) return channel;
  return `factline_outbox_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

/** The 64-bit advisory lock key of a schema's outbox relay lease. */
export function outboxLeaseKey(schema: string): string {
  return advisoryLockKey(`factline-outbox-relay\0${schema}`);
}

/**
 * A transactional outbox in PostgreSQL, for state-based services: the
 * application writes its rows and the messages to publish in one transaction
 * of its own (`await outbox.enqueue(client, …)` between its `BEGIN` and
 * `COMMIT`), and a relay (`startPostgresOutboxRelay`) publishes them
 * afterwards, at least once. Rows of an uncommitted transaction are invisible
 * to the relay and those of a rolled-back one never exist.
 *
 * @example
 * const outbox = await getPostgresOutbox({ pool });
 * const client = await pool.connect();
 * await client.query('BEGIN');
 * await client.query('INSERT INTO orders (id) VALUES ($1)', ['o-1']);
 * await outbox.enqueue(client, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]);
 * await client.query('COMMIT');
 */
export async function getPostgresOutbox(options: PostgresOutboxOptions): Promise<PostgresOutbox> {
  checkPostgresOutboxOptions(options);
  const schema = options?.schema ?? 'factline';
  const s = quoteSchema(schema);
  const poolSize = assertIntegerOption(options?.poolSize, 'poolSize', 1) ?? 4;
  const now = options?.now ?? Date.now;
  const { pool, own: ownPool } = await migratedPool({
    pool: options?.pool,
    connectionString: options?.connectionString,
    poolSize,
    schema,
    component: 'outbox',
    migrations: outboxMigrations,
  });
  const channel = outboxChannel(schema);
  let closed = false;

  return {
    pool,
    schema,
    async enqueue(client, topic, messages) {
      if (typeof client?.query !== 'function') {
        throw new ValidationError({ path: 'client', message: 'must be a pg client' });
      }
      assertName(topic, 'topic');
      const built = options?.schemas
        ? await encodeMessages(options.schemas, messages, now)
        : prepareMessages(messages, now);
      await assertInTransaction(client);
      if (built.length === 0) return built;
      // One statement: the rows in the given order (seq follows it), and a
      // notification PostgreSQL delivers only if the transaction commits.
      try {
        await client.query({
          text: `WITH inserted AS (
                   INSERT INTO ${s}.outbox (topic, message_id, key, message)
                   SELECT $1, m.id, m.key, m.message
                   FROM unnest($2::text[], $3::text[], $4::json[]) WITH ORDINALITY AS m(id, key, message, ord)
                   ORDER BY m.ord
                   RETURNING seq
                 )
                 SELECT pg_notify($5, '') FROM (SELECT count(*) FROM inserted) AS c`,
          values: [
            topic,
            built.map((m) => m.id),
            built.map((m) => m.key),
            built.map((m) => JSON.stringify(m)),
            channel,
          ],
        });
      } catch (error) {
        const how = `create them with getPostgresOutbox({ schema: '${schema}' }) on that database, and enqueue on a client of it`;
        throw missingTablesError(error, 'outbox', how) ?? toStorageError(error);
      }
      return built;
    },
    async pending() {
      try {
        const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.outbox`);
        return rows[0]?.n ?? 0;
      } catch (error) {
        throw toStorageError(error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (ownPool) await pool.end().catch(() => undefined);
    },
  };
}

/**
 * Publishes an outbox's rows to `transport`, in one process at a time: the
 * relay holding the lease, a session-level advisory lock taken with
 * `pg_try_advisory_lock` on a dedicated connection. Others stand by and try
 * every `leaseCheckMs`; when the holder stops or its connection drops, the
 * server releases the lock and one of them takes over (a relay that lost its
 * connection waits two checks before trying again, so a stand-by goes first). The holder reads up to
 * `batchSize` committed rows in `seq` order, publishes each run of one topic
 * in that order, and deletes the rows once the publish resolved, so a failure
 * in between publishes them again (at least once). Enqueues are heard through
 * `LISTEN` on a second dedicated connection (`<leaseApplicationName>-listen`,
 * notified at commit); `pollMs` covers the rest.
 *
 * A transaction that commits after a later-numbered one has its rows
 * published after that one's: order holds within each transaction, and across
 * transactions that commit one after the other.
 */
export async function startPostgresOutboxRelay(
  outbox: PostgresOutbox,
  transport: Transport,
  options: PostgresOutboxRelayOptions = {},
): Promise<PostgresOutboxRelay> {
  checkPostgresOutboxRelayOptions(options);
  if (!outbox?.pool || typeof transport?.publish !== 'function') {
    throw new ValidationError({ path: 'relay', message: 'needs an outbox and a transport' });
  }
  const leaseCheckMs = assertIntegerOption(options.leaseCheckMs, 'leaseCheckMs', 1) ?? 1000;
  const { connection, leaseApplicationName, leaseCheckMs: _check, ...relayOptions } = options;
  const base = connection ?? (outbox.pool.options as pg.ClientConfig);
  const applicationName = leaseApplicationName ?? 'factline-outbox-relay';
  const leases = createPostgresLeases({
    connection: dedicatedConnectionSettings(base, applicationName),
    keyOf: () => outboxLeaseKey(outbox.schema),
    checkMs: leaseCheckMs,
  });
  const listener = new ChannelListener({
    connection: dedicatedConnectionSettings(base, `${applicationName}-listen`),
    channel: outboxChannel(outbox.schema),
    reconnectInitialMs: 100,
    reconnectMaxMs: Math.max(1000, leaseCheckMs),
    onError: listenFailureReporter(
      'the outbox relay',
      outboxChannel(outbox.schema),
      `it polls every ${options.pollMs ?? 100} ms`,
      options,
    ),
  });
  return startOutboxRelay(postgresOutboxRows(outbox, listener), transport, {
    ...relayOptions,
    lease: leases.lease('outbox'),
    leaseCheckMs,
    async close() {
      await leases.close();
      await listener.close();
    },
  });
}

/** Per pool, an object per schema naming its outbox table: every relay's port on it gives the same. */
const tables = new WeakMap<pg.Pool, Map<string, object>>();
const tableOf = (pool: pg.Pool, schema: string): object => {
  const schemas = tables.get(pool) ?? new Map<string, object>();
  tables.set(pool, schemas);
  const table = schemas.get(schema) ?? { schema };
  schemas.set(schema, table);
  return table;
};

/** Core's `Outbox` port on `<schema>.outbox`: the relay's statements, and enqueues heard by `LISTEN`. */
function postgresOutboxRows(outbox: PostgresOutbox, listener: ChannelListener): Outbox {
  const s = quoteSchema(outbox.schema);
  const { pool } = outbox;
  return {
    table: tableOf(pool, outbox.schema),
    async read(limit, skipTopics) {
      try {
        const { rows } = await pool.query<{ seq: string; topic: string; message: string }>(
          skipTopics.length === 0
            ? {
                text: `SELECT seq, topic, message::text AS message FROM ${s}.outbox ORDER BY seq LIMIT $1`,
                values: [limit],
              }
            : {
                text: `SELECT seq, topic, message::text AS message FROM ${s}.outbox
                        WHERE topic <> ALL ($2::text[]) ORDER BY seq LIMIT $1`,
                values: [limit, skipTopics],
              },
        );
        return rows.map((row) => ({ seq: row.seq, topic: row.topic, message: revive(row.message) }));
      } catch (error) {
        throw toStorageError(error);
      }
    },
    async remove(seqs) {
      try {
        await pool.query({ text: `DELETE FROM ${s}.outbox WHERE seq = ANY($1::bigint[])`, values: [seqs] });
      } catch (error) {
        throw toStorageError(error);
      }
    },
    // Notified at commit; `undefined` (LISTEN reconnected) may have missed some: wake too.
    onEnqueue: (wake) => listener.subscribe(() => wake()),
    async backlog() {
      try {
        // The age by the database's clock, which wrote created_at: the relay's clock may disagree with it.
        const { rows } = await pool.query<{ rows: number; oldest_at: number | null; age_ms: number | null }>(
          `SELECT count(*)::int AS rows, (extract(epoch FROM min(created_at)) * 1000)::float8 AS oldest_at,
                  (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS age_ms
             FROM ${s}.outbox`,
        );
        const row = rows[0] as { rows: number; oldest_at: number | null; age_ms: number | null };
        if (row.oldest_at === null || row.age_ms === null) return { rows: row.rows, oldestAt: undefined };
        return { rows: row.rows, oldestAt: row.oldest_at, oldestAgeMs: Math.max(0, row.age_ms) };
      } catch (error) {
        throw toStorageError(error);
      }
    },
  };
}
