import { createHash } from 'node:crypto';
import {
  type Message,
  type MessageInput,
  type OutboxRelayStats,
  type Transport,
  ValidationError,
} from '@factline/core';
import {
  assertIntegerOption,
  assertName,
  createOutboxHold,
  createRelayStatus,
  createWakeablePause,
  messageFromJson,
  prepareMessages,
} from '@factline/core/adapter';
import pg from 'pg';
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

export interface PostgresOutboxRelayOptions {
  /** Rows read (and published) per round. Default 100. */
  batchSize?: number;
  /** How often the lease holder looks for rows while idle, ms. Default 100. */
  pollMs?: number;
  /** How often a relay standing by tries to take the lease, and the holder checks its lease connection, ms. Default 1000. */
  leaseCheckMs?: number;
  /** `application_name` of the lease connection. Default `'factline-outbox-relay'`. */
  leaseApplicationName?: string;
  /** Settings of the lease connection. Default: the pool's settings. */
  connection?: pg.ClientConfig;
  /**
   * While no subscription to a topic is declared, its rows are held (never
   * dropped): tried again after `pollMs`, then after twice as long each time,
   * up to this many ms. Default 5000.
   */
  holdBackoffMaxMs?: number;
  /**
   * Called when a round (read, publish, delete) fails (the holder tries again
   * after `pollMs`), and on every hold of a topic with no subscription
   * (`NoSubscriptionError`).
   */
  onError?: (error: unknown) => void;
  /** Called when this relay takes (`'held'`) or loses (`'standby'`) the lease. */
  onLeaseChange?: (lease: 'held' | 'standby') => void;
}

/** What the relay reports about itself (the same on every adapter). */
export type PostgresOutboxRelayStats = OutboxRelayStats;

export interface PostgresOutboxRelay {
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
  return createHash('sha256').update(`factline-outbox-relay\0${schema}`).digest().readBigInt64BE(0).toString();
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
      const built = prepareMessages(messages, now);
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

/** Settings of the lease connection, named so it can be told apart in `pg_stat_activity`. */
function leaseConnectionSettings(pool: pg.Pool, options: PostgresOutboxRelayOptions): pg.ClientConfig {
  const settings: pg.ClientConfig = { ...(options.connection ?? (pool.options as pg.ClientConfig)) };
  if (settings.connectionString) {
    try {
      const url = new URL(settings.connectionString);
      if (url.searchParams.has('application_name')) {
        url.searchParams.delete('application_name');
        settings.connectionString = url.toString();
      }
    } catch {
      // Not a URL: left as it is.
    }
  }
  return {
    connectionTimeoutMillis: 10_000,
    ...settings,
    application_name: options.leaseApplicationName ?? 'factline-outbox-relay',
    keepAlive: true,
  };
}

const noop = () => undefined;

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
 * `LISTEN` on the lease connection (notified at commit); `pollMs` covers the rest.
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
  const batchSize = assertIntegerOption(options.batchSize, 'batchSize', 1) ?? 100;
  const pollMs = assertIntegerOption(options.pollMs, 'pollMs', 1) ?? 100;
  const leaseCheckMs = assertIntegerOption(options.leaseCheckMs, 'leaseCheckMs', 1) ?? 1000;
  const holdBackoffMaxMs = assertIntegerOption(options.holdBackoffMaxMs, 'holdBackoffMaxMs', 1) ?? 5000;
  const s = quoteSchema(outbox.schema);
  const key = outboxLeaseKey(outbox.schema);
  const channel = outboxChannel(outbox.schema);
  const pool = outbox.pool;

  const status = createRelayStatus('standby', options);
  const { stats, setLease, report } = status;
  const hold = createOutboxHold(status, { initialMs: pollMs, maxMs: holdBackoffMaxMs });
  let running = true;
  let connection: pg.Client | undefined;
  /** After losing the lease, not before: a relay standing by takes over first. */
  let standByUntil = 0;

  const { pause, wake, stop } = createWakeablePause();

  /** The lease connection closed: the server released the lock, so nothing may be published here any more. */
  const lost = (client: pg.Client) => {
    if (connection !== client) return;
    connection = undefined;
    if (stats.lease === 'held') standByUntil = Date.now() + 2 * leaseCheckMs;
    setLease('standby');
    client.end().catch(noop);
    wake();
  };

  const openConnection = async (): Promise<pg.Client> => {
    const client = new pg.Client({
      ...leaseConnectionSettings(pool, options),
      query_timeout: Math.max(10_000, 5 * leaseCheckMs),
    });
    client.on('error', () => lost(client));
    client.on('end', () => lost(client));
    client.on('notification', wake);
    try {
      await client.connect();
    } catch (error) {
      client.end().catch(noop);
      throw toStorageError(error);
    }
    return client;
  };

  /** A query on the lease connection; any failure means the connection is gone. */
  const leaseQuery = async (client: pg.Client, text: string, values: unknown[] = []) => {
    try {
      return (await client.query({ text, values })).rows;
    } catch (error) {
      lost(client);
      throw toStorageError(error);
    }
  };

  /** Takes the lease if free; true when held. */
  const tryTake = async (): Promise<boolean> => {
    if (!connection) {
      const opened = await openConnection();
      if (!running) {
        await opened.end().catch(noop);
        return false;
      }
      connection = opened;
    }
    const client = connection;
    const [row] = await leaseQuery(client, 'SELECT pg_try_advisory_lock($1::bigint) AS taken', [key]);
    if (row?.taken !== true || connection !== client) return false;
    await leaseQuery(client, `LISTEN "${channel}"`);
    setLease('held');
    return true;
  };

  /** One round as holder: returns how many rows it read. */
  const round = async (): Promise<number> => {
    const skipped = hold.skipped();
    const { rows } = await pool
      .query<{ seq: string; topic: string; message: string }>(
        skipped.length === 0
          ? {
              text: `SELECT seq, topic, message::text AS message FROM ${s}.outbox ORDER BY seq LIMIT $1`,
              values: [batchSize],
            }
          : {
              text: `SELECT seq, topic, message::text AS message FROM ${s}.outbox
                      WHERE topic <> ALL ($2::text[]) ORDER BY seq LIMIT $1`,
              values: [batchSize, skipped],
            },
      )
      .catch((error: unknown) => {
        throw toStorageError(error);
      });
    /** Topics held in this round: none of their later rows may go out before the held ones. */
    const heldNow = new Set<string>();
    let done = 0;
    while (done < rows.length) {
      // Lost the lease meanwhile: another relay publishes from here on.
      if (!running || stats.lease !== 'held') break;
      const topic = rows[done]?.topic as string;
      let end = done;
      while (end < rows.length && rows[end]?.topic === topic) end++;
      const run = rows.slice(done, end);
      if (heldNow.has(topic)) {
        done = end;
        continue;
      }
      const published = await hold.publish(
        transport,
        topic,
        run.map((row) => revive(row.message)),
      );
      if (!published) {
        heldNow.add(topic);
        done = end;
        continue;
      }
      stats.published += run.length;
      await pool
        .query({ text: `DELETE FROM ${s}.outbox WHERE seq = ANY($1::bigint[])`, values: [run.map((r) => r.seq)] })
        .catch((error: unknown) => {
          throw toStorageError(error);
        });
      done = end;
    }
    return rows.length;
  };

  const loop = async () => {
    let lastCheck = Date.now();
    while (running) {
      if (stats.lease !== 'held') {
        const wait = standByUntil - Date.now();
        if (wait > 0) {
          await pause(wait);
          continue;
        }
        try {
          if (!(await tryTake())) {
            await pause(leaseCheckMs);
            continue;
          }
          lastCheck = Date.now();
        } catch (error) {
          report(error);
          await pause(leaseCheckMs);
          continue;
        }
      }
      let read = 0;
      try {
        read = await round();
      } catch (error) {
        report(error);
        await pause(pollMs);
        continue;
      }
      // The holder checks that its lease connection still answers.
      if (Date.now() - lastCheck >= leaseCheckMs && connection) {
        lastCheck = Date.now();
        await leaseQuery(connection, 'SELECT 1').catch(noop);
      }
      if (read < batchSize && running && stats.lease === 'held') {
        await pause(Math.min(pollMs, Math.max(1, leaseCheckMs - (Date.now() - lastCheck))));
      }
    }
  };
  const looping = loop();

  return {
    async stop() {
      if (!running) return looping;
      running = false;
      stop();
      await looping;
      const client = connection;
      connection = undefined;
      setLease('standby');
      // Ending the session releases the lease.
      if (client) await client.end().catch(noop);
      stats.running = false;
    },
    stats: () => ({ ...stats }),
  };
}
