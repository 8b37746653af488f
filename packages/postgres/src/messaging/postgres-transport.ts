import { createHash } from 'node:crypto';
import {
  type DeadLetterStore,
  type Delivery,
  isFactlineError,
  type Message,
  NoSubscriptionError,
  StoreClosedError,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  ValidationError,
} from '@factline/core';
import {
  assertIntegerOption,
  assertMessages,
  assertName,
  checkSubscribeOptions,
  checkTransportPublishOptions,
  createKeyTally,
  messageFromJson,
} from '@factline/core/adapter';
import type pg from 'pg';
import { ChannelListener } from '../channel-listener.ts';
import { migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresTransportOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { type AckInTransaction, ackInTransaction } from './ack-in-transaction.ts';
import { claimStatement, claimWindow } from './postgres-claim.ts';
import { getPostgresDeadLetterStore } from './postgres-consumer-stores.ts';

export interface PostgresTransportOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
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
  /** Settings of the dedicated LISTEN connection. Default: the connection string, or the pool's settings. */
  listenConnection?: pg.ClientConfig;
  /** How often a waiting receiver looks for messages while no notification can reach it. Default 1000 ms. */
  pollIntervalMs?: number;
}

export interface PostgresTransport extends Transport {
  /** The pool the transport uses. */
  readonly pool: pg.Pool;
  /** The schema holding the transport's tables. */
  readonly schema: string;
}

/**
 * The NOTIFY channel publishes of a schema's transport are signalled on:
 * `factline_transport_<schema>`, or a hash of the schema name when that would
 * pass PostgreSQL's 63-byte identifier limit. The payload is the topic.
 */
export function transportChannel(schema: string): string {
  const channel = `factline_transport_${schema}`;
  if (channel.length <= 63) return channel;
  return `factline_transport_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

export const transportMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'transport groups and per-group message queues',
    up: (s) => `
      -- The consumer groups of each topic: a publish copies its messages to
      -- every group registered at that moment.
      CREATE TABLE ${s}.transport_groups (
        topic text NOT NULL,
        group_name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, group_name)
      );

      -- One row per message and group, deleted when the group acks it.
      -- visible_at: not handed out before (delayed delivery, a release with a
      -- delay, or in flight until the visibility timeout). lease: set on every
      -- hand-out; a settle must name the current one.
      CREATE TABLE ${s}.transport_messages (
        seq bigserial NOT NULL,
        topic text NOT NULL,
        group_name text NOT NULL,
        id text NOT NULL,
        key text NOT NULL,
        message json NOT NULL,
        visible_at timestamptz NOT NULL,
        delivery_count integer NOT NULL DEFAULT 0,
        lease uuid,
        PRIMARY KEY (topic, group_name, seq),
        CONSTRAINT transport_messages_id_key UNIQUE (topic, group_name, id)
      );
      CREATE INDEX transport_messages_visible ON ${s}.transport_messages (topic, group_name, visible_at);
    `,
  },
  {
    version: 2,
    description: 'queue indexes the planner cannot misuse; hand-outs as HOT updates',
    up: (s) => `
      -- Only the primary key starts with (topic, group_name). With the other
      -- two indexes starting so as well, the planner, lacking statistics on a
      -- young or churning queue table, served acks and claims from them and
      -- filtered on seq: a scan of the whole group per statement (milliseconds
      -- per message with a few thousand waiting). The claim walks the primary
      -- key in seq order and skips rows not yet visible.
      DROP INDEX ${s}.transport_messages_visible;
      ALTER TABLE ${s}.transport_messages
        DROP CONSTRAINT transport_messages_id_key,
        ADD CONSTRAINT transport_messages_id_key UNIQUE (id, topic, group_name);
      -- No index covers visible_at, lease or delivery_count any more, so a
      -- hand-out, release or extension is a HOT update when its page has room.
      ALTER TABLE ${s}.transport_messages SET (fillfactor = 80);
    `,
  },
];

interface TakenRow {
  seq: string;
  message: string;
  delivery_count: number;
  lease: string;
}

const reviveMessage = messageFromJson;

/** Publish columns, one array each, in publish order. */
function messageColumns(messages: readonly Message[]): [string[], string[], string[], (string | null)[]] {
  // Checked by assertMessages first: ids and keys are names, deliverAt a valid Date, the rest JSON.
  return [
    messages.map((m) => m.id),
    messages.map((m) => m.key),
    messages.map((m) => JSON.stringify(m)),
    messages.map((m) => (m.deliverAt ? m.deliverAt.toISOString() : null)),
  ];
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

  const channel = transportChannel(schemaName);
  let closed = false;
  let deadLetters: Promise<DeadLetterStore> | undefined;

  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    if (closed) throw new StoreClosedError('transport');
    try {
      return (await pool.query<R>({ name: statementName(schemaName, `transport-${name}`), text, values })).rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };

  // --- Waking waiting receivers -------------------------------------------------------------

  /** Bumped per topic on every publish heard; `all` on signals that may concern any topic. */
  const generations = new Map<string, number>();
  let allGeneration = 0;
  const waiters = new Map<string, Set<() => void>>();
  const generation = (topic: string) => allGeneration + (generations.get(topic) ?? 0);

  const wake = (topic: string | undefined) => {
    if (topic === undefined) {
      allGeneration += 1;
      for (const set of waiters.values()) for (const waiter of [...set]) waiter();
      return;
    }
    generations.set(topic, (generations.get(topic) ?? 0) + 1);
    for (const waiter of [...(waiters.get(topic) ?? [])]) waiter();
  };

  const listenSettings = (): pg.ClientConfig => {
    const base: pg.ClientConfig =
      options.listenConnection ??
      (options.connectionString !== undefined
        ? { connectionString: options.connectionString }
        : { ...(pool.options as pg.ClientConfig) });
    return { connectionTimeoutMillis: 10_000, ...base, application_name: 'factline-transport-listen', keepAlive: true };
  };
  // The payload is the topic published to; `undefined`: anything may have been published meanwhile.
  const listener =
    options.listen === false
      ? undefined
      : new ChannelListener({ connection: listenSettings(), channel, reconnectInitialMs: 100, reconnectMaxMs: 30_000 });
  let subscribed = false;
  const startListening = () => {
    if (subscribed || !listener) return;
    subscribed = true;
    listener.subscribe(wake); // ended by listener.close() in close()
  };

  /** Resolves on a wake for `topic` (or any) after generation `seen`, after `ms`, or on `signal`. */
  const waitForWake = (topic: string, seen: number, ms: number, signal: AbortSignal, local: Set<() => void>) =>
    new Promise<void>((resolve) => {
      if (generation(topic) !== seen || ms <= 0 || signal.aborted || closed) return resolve();
      let set = waiters.get(topic);
      if (!set) {
        set = new Set();
        waiters.set(topic, set);
      }
      const own = set;
      const done = () => {
        clearTimeout(timer);
        own.delete(done);
        local.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      own.add(done);
      local.add(done);
      signal.addEventListener('abort', done, { once: true });
    });

  // --- Groups ------------------------------------------------------------------------------

  const registrations = new Map<string, { topic: string; done: Promise<void> }>();
  const register = (topic: string, group: string): Promise<void> => {
    const name = JSON.stringify([topic, group]);
    const existing = registrations.get(name);
    if (existing) return existing.done;
    const done = query(
      'register',
      `INSERT INTO ${s}.transport_groups (topic, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [topic, group],
    ).then(
      () => undefined,
      (error: unknown) => {
        // Tried again by the next receive.
        registrations.delete(name);
        throw error;
      },
    );
    done.catch(() => undefined);
    registrations.set(name, { topic, done });
    return done;
  };

  // --- Statements ---------------------------------------------------------------------------

  /**
   * One row per message and registered group ($6 = one group only, for a
   * redeliver), in publish order; a publish skips ids the group still holds; one
   * notification when anything was inserted (sent at commit). Returns how many
   * groups the topic has, read in the insert's own snapshot, so a publish that
   * requires a subscription and finds none has written nothing.
   */
  const insertStatement = (onConflict: string) => `WITH input AS (
      SELECT u.id, u.key, u.body, u.deliver_at, u.ord
        FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS u(id, key, body, deliver_at, ord)
    ), inserted AS (
      INSERT INTO ${s}.transport_messages (topic, group_name, id, key, message, visible_at)
      SELECT g.topic, g.group_name, i.id, i.key, i.body::json, coalesce(i.deliver_at, now())
        FROM ${s}.transport_groups g CROSS JOIN input i
       WHERE g.topic = $1 AND ($6::text IS NULL OR g.group_name = $6::text)
       ORDER BY g.group_name, i.ord
      ${onConflict}
      RETURNING 1
    )
    SELECT c.groups, CASE WHEN c.n > 0 THEN pg_notify($7, $8) END AS notified
      FROM (SELECT (SELECT count(*) FROM inserted) AS n,
                   (SELECT count(*)::int FROM ${s}.transport_groups WHERE topic = $1) AS groups) c`;
  const INSERT = insertStatement('ON CONFLICT (topic, group_name, id) DO NOTHING');
  /**
   * A redeliver (a dead-letter redrive) of a message the group still holds
   * (its dead-lettering consumer has not acked it yet) makes that row due
   * again under no lease: the pending ack then finds nothing to delete, and
   * the message is delivered once more instead of being lost.
   */
  const REDELIVER = insertStatement(`ON CONFLICT (topic, group_name, id) DO UPDATE
         SET message = excluded.message, visible_at = excluded.visible_at, lease = NULL, delivery_count = 0`);

  /** Hands out up to `max` rows, each only with every earlier row of its key: see `claimStatement`. */
  const TAKE = claimStatement(s);

  /**
   * Milliseconds until the group's next row not visible yet becomes so (null: none). Rows visible
   * but held back behind their key's earlier rows are left out: waking for them would spin.
   */
  const NEXT_DUE = `SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::float8 AS ms
      FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2 AND visible_at > now()`;

  const ACK = `DELETE FROM ${s}.transport_messages
     WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid`;

  const RELEASE = `WITH released AS (
      UPDATE ${s}.transport_messages
         SET visible_at = now() + $5::float8 * interval '1 millisecond', lease = NULL
       WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid
      RETURNING 1
    )
    SELECT pg_notify($6, $7) FROM released`;

  const EXTEND = `UPDATE ${s}.transport_messages
       SET visible_at = now() + $5::float8 * interval '1 millisecond'
     WHERE topic = $1 AND group_name = $2 AND seq = $3::bigint AND lease = $4::uuid`;

  /** Notification payloads stop at 8000 bytes: a longer topic wakes every receiver instead. */
  const payloadOf = (topic: string) => (Buffer.byteLength(topic) < 7000 ? topic : '');

  const insert = async (topic: string, group: string | null, messages: readonly Message[], required = false) => {
    if (closed) throw new StoreClosedError('transport');
    assertName(topic, 'topic');
    if (group !== null) assertName(group, 'group');
    assertMessages(messages);
    if (messages.length === 0) return;
    const columns = messageColumns(messages);
    // Groups this process is subscribing get what is published after subscribe() returned.
    const pending = [...registrations.values()].filter((r) => r.topic === topic).map((r) => r.done);
    await Promise.allSettled(pending);
    const [result] = await query<{ groups: number }>(
      group === null ? 'publish' : 'redeliver',
      group === null ? INSERT : REDELIVER,
      [topic, ...columns, group, channel, payloadOf(topic)],
    );
    if (required && result?.groups === 0) throw new NoSubscriptionError(topic);
    wake(topic);
  };

  const transport: PostgresTransport = {
    pool,
    schema: schemaName,
    capabilities: {
      delayedDelivery: true,
      deadLettering: false,
      perKeyOrder: true,
      competingConsumers: true,
      durable: true,
    },

    publish: async (topic, messages, publishOptions) =>
      insert(topic, null, messages, checkTransportPublishOptions(publishOptions)),

    async declareSubscription(topic, group) {
      assertName(topic, 'topic');
      assertName(group, 'group');
      if (closed) throw new StoreClosedError('transport');
      await register(topic, group);
    },

    redeliver: async (topic, group, messages) => {
      assertName(group, 'group');
      return insert(topic, group, messages);
    },

    subscribe(topic: string, group: string, given?: SubscribeOptions): Subscription {
      const subscribeOptions = checkSubscribeOptions(given) ?? {};
      assertName(topic, 'topic');
      assertName(group, 'group');
      if (closed) throw new StoreClosedError('transport');
      const visibility = subscribeOptions.visibilityTimeoutMs ?? 30_000;
      if (typeof visibility !== 'number' || !Number.isFinite(visibility) || visibility < 0) {
        throw new ValidationError({ path: 'visibilityTimeoutMs', message: 'must be a non-negative number' });
      }
      void register(topic, group).catch(() => undefined);
      let subscriptionClosed = false;
      /** This subscription's waiting receives, resolved on close. */
      const local = new Set<() => void>();

      // Deliveries of this subscription not settled yet, per message key: once a key has none left, its
      // later messages may go out, so this process's waiting receivers look again.
      const unsettled = createKeyTally(() => wake(topic));
      const settledOne = (key: string) => unsettled.settled(key);

      const settle = (seq: string, lease: string, key: string) => {
        /** Acked inside a committed inbox transaction: nothing left to do. */
        let settled = false;
        let counted = false;
        const once = () => {
          if (counted) return;
          counted = true;
          settledOne(key);
        };
        const run = async (name: string, text: string, extra: unknown[]) => {
          await query(name, text, [topic, group, seq, lease, ...extra]);
        };
        const inTransaction: AckInTransaction = {
          pool,
          schema: s,
          values: [topic, group, seq, lease],
          committed: () => {
            settled = true;
            once();
          },
        };
        return {
          [ackInTransaction]: inTransaction,
          ack: async () => {
            if (!settled) await run('ack', ACK, []);
            once();
          },
          release: async (delayMs: number) => {
            if (settled) return;
            await run('release', RELEASE, [Math.max(0, Number(delayMs) || 0), channel, payloadOf(topic)]);
            once();
            wake(topic);
          },
          extend: (ms: number) => (settled ? Promise.resolve() : run('extend', EXTEND, [Math.max(0, Number(ms) || 0)])),
        };
      };

      const take = async (max: number): Promise<Delivery[]> => {
        const rows: TakenRow[] = [];
        for (let window = claimWindow(max); ; window *= 8) {
          const found = await query<TakenRow>('take', TAKE, [topic, group, max - rows.length, visibility, window]);
          for (const row of found) if (row.seq != null) rows.push(row);
          // No marker row: the window held the whole group. Otherwise rows in flight, held back or
          // scheduled later filled it: look further while short (the rows taken now hold their keys).
          if (rows.length >= max || found.every((row) => row.seq != null)) break;
        }
        rows.sort((a, b) => a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
        return rows.map((row) => {
          const message = reviveMessage(row.message);
          unsettled.handedOut(message.key);
          return { message, deliveryCount: row.delivery_count, ...settle(row.seq, row.lease, message.key) };
        });
      };

      const nextDue = async (): Promise<number> => {
        const rows = await query<{ ms: number | null }>('next-due', NEXT_DUE, [topic, group]);
        const ms = rows[0]?.ms;
        return ms === null || ms === undefined ? Number.POSITIVE_INFINITY : ms;
      };

      const ended = () => closed || subscriptionClosed;

      return {
        async receive(max: number, waitMs: number, signal: AbortSignal): Promise<Delivery[]> {
          if (ended()) throw new StoreClosedError('transport');
          const limit = Math.floor(Number(max));
          if (!(limit > 0) || signal?.aborted) return [];
          const wait = Math.max(0, Number(waitMs) || 0);
          const deadline = Date.now() + wait;
          try {
            await register(topic, group);
            if (wait > 0) startListening();
            for (;;) {
              const seen = generation(topic);
              const found = await take(limit);
              if (found.length > 0) return found;
              if (signal.aborted || ended()) return [];
              const left = deadline - Date.now();
              if (left <= 0) return [];
              // Until the next row not visible yet is due; a key freed meanwhile wakes this process's receivers.
              let pause = Math.min(left, Math.max(5, Math.ceil(await nextDue())));
              if (!listener?.listening) pause = Math.min(pause, pollIntervalMs);
              await waitForWake(topic, seen, pause, signal, local);
              if (signal.aborted || ended()) return [];
            }
          } catch (error) {
            // The database is unreachable (restart, network): the error is reported only once the
            // caller's wait (at most the poll interval) passed, so a caller that simply receives
            // again does not spin.
            if (isFactlineError(error) && error.retryable && !ended()) {
              const pause = Math.min(Math.max(0, deadline - Date.now()), pollIntervalMs);
              await waitForWake(topic, generation(topic), pause, signal, local);
            }
            throw error;
          }
        },
        async close() {
          subscriptionClosed = true;
          for (const done of [...local]) done();
        },
      };
    },

    defaultDeadLetterStore() {
      if (closed) return Promise.reject(new StoreClosedError());
      // Memoised; a failed creation (the database unreachable) is tried again on the next call.
      deadLetters ??= getPostgresDeadLetterStore({ pool, schema: schemaName }).catch((error: unknown) => {
        deadLetters = undefined;
        throw error;
      });
      return deadLetters;
    },

    async close() {
      if (closed) return;
      closed = true;
      wake(undefined);
      await listener?.close();
      if (ownPool) await pool.end().catch(() => undefined);
    },
  };
  return transport;
}
