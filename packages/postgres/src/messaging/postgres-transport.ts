import { type Message, NoSubscriptionError, StoreClosedError, type Transport, TransportError } from '@factline/core';
import { assertIntegerOption, createQueueTransport, createReceiveWakeups } from '@factline/core/adapter';
import type pg from 'pg';
import { listenFailureReporter } from '../channel-listener.ts';
import { migratedPool, quoteSchema } from '../migrations.ts';
import { checkPostgresTransportOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import type { QueueQuery } from './postgres-claim.ts';
import { getPostgresDeadLetterStore } from './postgres-dead-letters.ts';
import { messageColumns, queueStatements } from './postgres-queue-statements.ts';
import { openPostgresSubscription, type PostgresQueue } from './postgres-subscriptions.ts';
import { transportMigrations } from './postgres-transport-migrations.ts';
import { createTransportListener, notifyPayload, transportChannel } from './postgres-wake-ups.ts';

export interface PostgresTransportOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool` (both: a `ValidationError`). */
  connectionString?: string;
  /** A node-postgres pool to use instead of opening one. The transport never ends it; its owner must. */
  pool?: pg.Pool;
  /** The schema holding the transport's tables; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool the transport opens. Default 10. */
  poolSize?: number;
  /**
   * Hear publishes from other processes at once through `LISTEN` on one
   * dedicated connection (default true). Without it, or while that connection
   * is down, waiting receivers look again every `pollIntervalMs`.
   */
  listen?: boolean;
  /**
   * Settings of the dedicated LISTEN connection (with `listen: false` there
   * is none: a `ValidationError`). Default: the connection string, or the pool's settings.
   */
  listenConnection?: pg.ClientConfig;
  /**
   * How often a waiting receiver looks for messages while no notification can
   * reach it: a whole number from 1 to 2147483647 (a timer's limit). Default 1000 ms.
   */
  pollIntervalMs?: number;
  /**
   * Told what fails outside a call's own outcome: `listen` (the LISTEN
   * connection cannot connect or dropped; waiting receivers poll every
   * `pollIntervalMs` until it is back), a `StorageError` once per run of
   * failures. Default: nothing is written anywhere.
   */
  onError?: (error: unknown, context: { stage: PostgresTransportErrorStage }) => void;
}

/** Where a PostgreSQL transport failure happened, as told to `onError`. */
export type PostgresTransportErrorStage = 'listen';

export interface PostgresTransport extends Transport {
  /** The pool the transport uses. */
  readonly pool: pg.Pool;
  /** The schema holding the transport's tables. */
  readonly schema: string;
}

/**
 * A durable transport on PostgreSQL tables (migration component `transport`):
 * every consumer group of a topic gets its own copy of each message published
 * after the group's subscription was declared (`declareSubscription` or its
 * first `subscribe`, a row of `transport_groups`); within a group, consumers in any number
 * of processes compete for messages (`FOR UPDATE SKIP LOCKED`), each
 * hand-out stamping a new lease so a settle from an expired delivery is
 * ignored. Delayed delivery, releases with a delay and visibility timeouts
 * are all one column, `visible_at`, compared with the database's clock.
 * Publishing a message id a group still holds is a no-op (idempotent
 * publish). Waiting receivers are woken by `NOTIFY` on the schema's channel,
 * heard on one dedicated connection, and fall back on polling.
 *
 * @example
 * const transport = await getPostgresTransport({ connectionString: 'postgres://app@127.0.0.1/app' });
 * const consumer = createConsumer({ name: 'billing', topic: 'orders', transport, handler });
 * await consumer.start();
 */
export async function getPostgresTransport(options: PostgresTransportOptions): Promise<PostgresTransport> {
  checkPostgresTransportOptions(options);
  const schemaName = options?.schema ?? 'factline';
  const s = quoteSchema(schemaName);
  const poolSize = assertIntegerOption(options?.poolSize, 'poolSize', 1) ?? 10;
  const pollIntervalMs = assertIntegerOption(options?.pollIntervalMs, 'pollIntervalMs', 1) ?? 1000;
  const { pool, own: ownPool } = await migratedPool({
    pool: options?.pool,
    connectionString: options?.connectionString,
    poolSize,
    schema: schemaName,
    component: 'transport',
    migrations: transportMigrations,
  });

  let closed = false;
  const channel = transportChannel(schemaName);
  const statements = queueStatements(s);
  const query: QueueQuery = async (name, text, values) => {
    if (closed) throw new StoreClosedError('transport');
    try {
      return (await pool.query({ name: statementName(schemaName, `transport-${name}`), text, values })).rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };

  // Waiting receivers wake per topic: on this process's writes, and on other processes' NOTIFY.
  const wakeups = createReceiveWakeups();
  const listener =
    options.listen === false
      ? undefined
      : createTransportListener({
          connectionString: options.connectionString,
          listenConnection: options.listenConnection,
          pool,
          channel,
          onError: listenFailureReporter(
            'the transport',
            channel,
            `waiting receivers poll every ${pollIntervalMs} ms`,
            {
              onError: options.onError && ((error) => options.onError?.(error, { stage: 'listen' })),
            },
          ),
        });
  let listening = false;
  const startListening = () => {
    if (listening || !listener) return;
    listening = true;
    // The payload is the topic published to; `undefined`: anything may have been published meanwhile.
    listener.subscribe((topic) => (topic === undefined ? wakeups.wakeAll() : wakeups.wake(topic))); // ended by close()
  };

  // Group registrations of this process, memoised; a failed one is tried again by the next receive.
  const registrations = new Map<string, { topic: string; done: Promise<void> }>();
  const register = (topic: string, group: string): Promise<void> => {
    const name = JSON.stringify([topic, group]);
    const existing = registrations.get(name);
    if (existing) return existing.done;
    const done = query('register', statements.REGISTER, [topic, group]).then(
      () => undefined,
      (error: unknown) => {
        registrations.delete(name);
        throw error;
      },
    );
    done.catch(() => undefined);
    registrations.set(name, { topic, done });
    return done;
  };

  const publish = async (topic: string, messages: readonly Message[], required: boolean) => {
    // Groups this process is subscribing get what is published after subscribe() returned.
    await Promise.allSettled([...registrations.values()].filter((r) => r.topic === topic).map((r) => r.done));
    const [result] = await query<{ groups: number }>('publish', statements.PUBLISH, [
      topic,
      ...messageColumns(messages),
      channel,
      notifyPayload(topic),
    ]);
    if (required && result?.groups === 0) throw new NoSubscriptionError(topic);
    wakeups.wake(topic);
  };

  /** To `group` alone, registering it in the same statement: kept for it whether or not it was registered. */
  const redeliver = async (topic: string, group: string, messages: readonly Message[]) => {
    const [result] = await query<{ written: number }>('redeliver', statements.REDELIVER, [
      topic,
      ...messageColumns(messages),
      group,
      channel,
      notifyPayload(topic),
    ]);
    wakeups.wake(topic);
    // One row per message, inserted or made due again: anything less and the caller must not count it delivered.
    if (result?.written !== messages.length) {
      throw new TransportError(
        `redelivering to group '${group}' of topic '${topic}' on PostgreSQL wrote ${result?.written ?? 0} of ${messages.length} messages`,
        { retryable: false },
      );
    }
  };

  const queue: PostgresQueue = {
    pool,
    s,
    statements,
    query,
    wakeups,
    channel,
    listener,
    startListening,
    pollIntervalMs,
    register,
    closed: () => closed,
  };

  return createQueueTransport(
    {
      // A key's earliest row, while not visible, keeps the key from every claim.
      delayedReleaseHoldsKey: true,
      isClosed: () => closed,
      publish,
      redeliver,
      declare: register,
      subscribe(topic, group, visibility) {
        void register(topic, group).catch(() => undefined);
        return openPostgresSubscription(queue, topic, group, visibility);
      },
      async backlog(topic, group) {
        // The oldest's age by the database's clock (created_at is its createdAt put on that clock at
        // publish); a row written before created_at existed leaves its createdAt to the reader's clock.
        const [row] = await query<{ messages: number; oldest: string | null; age_ms: number | null }>(
          'backlog',
          `SELECT count(*)::int AS messages,
                  (SELECT message->>'createdAt' FROM ${s}.transport_messages
                    WHERE topic = $1 AND group_name = $2 ORDER BY seq LIMIT 1) AS oldest,
                  (SELECT (extract(epoch FROM now() - created_at) * 1000)::float8 FROM ${s}.transport_messages
                    WHERE topic = $1 AND group_name = $2 ORDER BY seq LIMIT 1) AS age_ms
           FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2`,
          [topic, group],
        );
        if (!row?.oldest) return { messages: row?.messages ?? 0, oldestAt: undefined };
        const oldestAt = Date.parse(row.oldest);
        if (row.age_ms === null) return { messages: row.messages, oldestAt };
        return { messages: row.messages, oldestAt, oldestAgeMs: Math.max(0, row.age_ms) };
      },
      deadLetterStore: () => getPostgresDeadLetterStore({ pool, schema: schemaName }),
      async close() {
        closed = true;
        wakeups.stop();
        await listener?.close();
        if (ownPool) await pool.end().catch(() => undefined);
      },
    },
    { pool, schema: schemaName, system: 'postgresql' },
  );
}
