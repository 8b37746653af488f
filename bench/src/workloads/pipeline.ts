/**
 * Messaging pipeline workloads (`npm run bench -- pipeline`):
 * - `pipeline-sqlite-e2e` / `pipeline-postgres-e2e`: EVENTS single-event appends over 100 streams (100
 *   concurrent writers, one per stream) → event relay (`defineEventRelay` on the adapter's projection
 *   runner) → the adapter's SQL transport → `createConsumer` with an SQL inbox in the same database, whose
 *   handler does one INSERT into a table of that database. Rate = messages/s from the first append to the
 *   last message handled; p50/p99 = append resolved → handler done, in µs. `raw` = the same EVENTS INSERTs
 *   done directly in a loop on one connection (the bare table work). The handler writes through the inbox's
 *   transaction, which (transport and inbox sharing the connection or pool) also holds the ack.
 * - `pipeline-sqlite-latency` / `pipeline-postgres-latency`: the same path under a steady PACED.rate
 *   appends/s, for latencies not dominated by a backlog.
 * - `pipeline-postgres-keys`: KEYS_MESSAGES messages over 1,000 keys published straight to the PostgreSQL
 *   transport (untimed), then drained by a consumer (SQL inbox on the transport's pool) whose handler does
 *   one INSERT in the inbox's transaction; concurrency 1 against 8, and their ratio (the scaling figure).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Consumer,
  createConsumer,
  createMessage,
  defineEventRelay,
  type Inbox,
  type Message,
  type ProjectionRunner,
  type Transport,
} from '@factline/core';
import type { PostgresEventStore, PostgresTransport } from '@factline/postgres';
import {
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteTransport,
  openSqliteDatabase,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import pg from 'pg';
import { report, type Subject, type Trial, type Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import { endRemoteConsumers, type RemoteConsumers, startRemoteConsumers } from './pipeline-processes.ts';
import { dropSchema, freshSchema, loadFactlinePostgres, pgUnavailable, pgUrl } from './postgres.ts';

const EVENTS = Number(process.env.FACTLINE_BENCH_PIPELINE_EVENTS ?? 5000);
const STREAMS = 100;
const KEYS = 1000;
const KEYS_MESSAGES = Number(process.env.FACTLINE_BENCH_PIPELINE_KEYS_MESSAGES ?? 5000);
const KEYS_REPEAT = 3;
const E2E_REPEAT = 3;
/** The paced latency runs: a steady rate well under what either adapter sustains. */
const PACED = { rate: 500, events: Number(process.env.FACTLINE_BENCH_PIPELINE_PACED_EVENTS ?? 2500) };
const percentiles = new Map<string, { p50: number[]; p99: number[] }>();
const TOPIC = 'orders';
const dir = join(tmpdir(), `factline-bench-pipeline-${process.pid}`);
let counter = 0;

export function removePipelineFiles(): void {
  endRemoteConsumers();
  rmSync(dir, { recursive: true, force: true });
}

const freshFile = () => {
  mkdirSync(dir, { recursive: true });
  return join(dir, `trial-${++counter}.db`);
};

const removeFile = (path: string) => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
};

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

interface Item {
  i: number;
  total: number;
}

/** Counts handled messages and resolves once `expected` distinct ones were handled. */
function completion(expected: number) {
  const handledAt = new Float64Array(expected);
  let handled = 0;
  let resolve: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  return {
    handledAt,
    done,
    /** Marks `i` handled, now or at `at` (this process's performance.now() clock). */
    mark(i: number, at = performance.now()) {
      if (handledAt[i] === 0) {
        handledAt[i] = at;
        if (++handled === expected) resolve();
      }
    },
  };
}

const ITEMS_SQLITE =
  'CREATE TABLE IF NOT EXISTS bench_items (id TEXT PRIMARY KEY, stream TEXT NOT NULL, total REAL NOT NULL)';
const ITEMS_PG = (schema: string) =>
  `CREATE TABLE IF NOT EXISTS "${schema}".bench_items (id text PRIMARY KEY, stream text NOT NULL, total double precision NOT NULL)`;
const INSERT_PG = (schema: string) => `INSERT INTO "${schema}".bench_items (id, stream, total) VALUES ($1, $2, $3)`;

// ---- end to end ----

interface E2eParts {
  append: (stream: string, data: Item) => Promise<unknown>;
  transport: Transport;
  // biome-ignore lint/suspicious/noExplicitAny: the SQLite and PostgreSQL inboxes hand the handler different transactions
  inbox: Inbox<any>;
  /** The handler's one write, through the inbox's transaction. */
  insert: (message: Message, tx: never) => Promise<void> | void;
  startRelay: () => Promise<ProjectionRunner>;
  /** Consumers in child processes instead of this one (PostgreSQL only); `handled` gets epoch ms. */
  startRemote?: (remote: Remote, handled: (i: number, at: number) => void) => Promise<RemoteConsumers>;
  close: () => Promise<void>;
}

/** Competing consumers in `processes` child processes of `lanes` lanes each. */
interface Remote {
  processes: number;
  lanes: number;
}

/** Shared run of the e2e subjects: the consumer and the relay are up before the clock starts. */
function e2eTrial(
  workload: string,
  subject: string,
  concurrency: number,
  open: () => Promise<E2eParts>,
  paced?: { rate: number; events: number },
  instances = 1,
  remote?: Remote,
): Trial {
  let parts: E2eParts;
  let consumers: Consumer[] = [];
  let remoteConsumers: RemoteConsumers | undefined;
  let runner: ProjectionRunner | undefined;
  const events = paced?.events ?? EVENTS;
  const tracker = completion(events);
  const appendedAt = new Float64Array(events);
  return {
    setup: async () => {
      parts = await open();
      if (remote) {
        if (!parts.startRemote) throw new Error(`${subject}: consumers in child processes are not supported here`);
        remoteConsumers = await parts.startRemote(remote, (i, at) => tracker.mark(i, at - performance.timeOrigin));
        runner = await parts.startRelay();
        return;
      }
      // `instances` consumers of one group compete for its messages, each with `concurrency` lanes.
      consumers = Array.from({ length: instances }, () =>
        createConsumer({
          name: 'bench',
          topic: TOPIC,
          transport: parts.transport,
          inbox: parts.inbox,
          concurrency,
          handler: (message, tx) => {
            const done = parts.insert(message, tx as never);
            const mark = () => tracker.mark((message.data as Item).i);
            // Synchronous on SQLite (its inbox transaction is), awaited on PostgreSQL.
            return done === undefined ? mark() : done.then(mark);
          },
        }),
      );
      for (const consumer of consumers) await consumer.start();
      runner = await parts.startRelay();
    },
    run: async () => {
      const started = performance.now();
      const append = async (i: number) => {
        await parts.append(`order-${i % STREAMS}`, { i, total: orderData(i).total });
        appendedAt[i] = performance.now();
      };
      if (paced) {
        // A steady rate: append i is started at its due time, whatever the earlier ones are doing.
        const pending: Promise<void>[] = [];
        for (let i = 0; i < events; i++) {
          const wait = started + (i * 1000) / paced.rate - performance.now();
          if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
          pending.push(append(i));
        }
        await Promise.all(pending);
      } else {
        // As fast as the store takes them: one writer per stream.
        await Promise.all(
          Array.from({ length: STREAMS }, async (_, s) => {
            for (let i = s; i < events; i += STREAMS) await append(i);
          }),
        );
      }
      await tracker.done;
      const seconds = (performance.now() - started) / 1000;
      const latencies = Array.from(appendedAt, (at, i) => Math.max(0, (tracker.handledAt[i] as number) - at)).sort(
        (a, b) => a - b,
      );
      // Each subject's last trial reports the medians of its measured trials' percentiles (one figure
      // each); the throughput workloads run a warm-up trial first, whose figures are left out.
      const key = `${workload} ${subject}`;
      const seen = percentiles.get(key) ?? { p50: [], p99: [] };
      seen.p50.push(percentile(latencies, 50) * 1000);
      seen.p99.push(percentile(latencies, 99) * 1000);
      percentiles.set(key, seen);
      if (seen.p50.length === E2E_REPEAT + (paced ? 0 : 1)) {
        report(workload, `${subject}.p50`, median(seen.p50.slice(-E2E_REPEAT)), 'us');
        report(workload, `${subject}.p99`, median(seen.p99.slice(-E2E_REPEAT)), 'us');
      }
      return { units: events, seconds };
    },
    teardown: async () => {
      await runner?.stop();
      for (const consumer of consumers) await consumer.stop();
      await remoteConsumers?.stop();
      await parts?.close();
    },
  };
}

/** The SQLite end-to-end subject (append → relay → transport → consumer with inbox); also run by tracing-overhead. */
export function sqliteE2e(
  workload: string,
  name: string,
  concurrency: number,
  paced?: { rate: number; events: number },
  instances = 1,
  remote?: Remote,
): Subject {
  return {
    name,
    trial: () => {
      const path = freshFile();
      return e2eTrial(
        workload,
        name,
        concurrency,
        async () => {
          const store = getSqliteEventStore({ path });
          const transport = getSqliteTransport({ database: store.database });
          store.database.exec(ITEMS_SQLITE);
          const insert = store.database.prepare<[string, string, number]>(
            'INSERT INTO bench_items (id, stream, total) VALUES (?, ?, ?)',
          );
          return {
            append: (stream, data) => store.append(stream, [{ type: 'ItemAdded', data }]),
            transport,
            inbox: getSqliteInbox({ database: store.database }),
            insert: (message) => {
              insert.run(message.id, message.key, (message.data as Item).total);
            },
            startRemote: (r, handled) =>
              startRemoteConsumers({
                adapter: 'sqlite',
                where: path,
                schema: '',
                topic: TOPIC,
                ...r,
                groupCommit: true,
                handled,
              }),
            startRelay: () =>
              startSqliteProjections(
                store,
                [defineEventRelay({ name: 'relay', transport, topic: TOPIC, handles: ['ItemAdded'] })],
                {
                  batchSize: 1000,
                },
              ),
            close: async () => {
              await transport.close();
              await store.close();
              removeFile(path);
            },
          };
        },
        paced,
        instances,
        remote,
      );
    },
  };
}

const sqliteRaw: Subject = {
  name: 'raw',
  trial: () => {
    const path = freshFile();
    let db: Database;
    return {
      setup: () => {
        db = openSqliteDatabase(path);
        db.exec(ITEMS_SQLITE);
      },
      run: () => {
        const insert = db.prepare<[string, string, number]>(
          'INSERT INTO bench_items (id, stream, total) VALUES (?, ?, ?)',
        );
        for (let i = 0; i < EVENTS; i++) insert.run(crypto.randomUUID(), `order-${i % STREAMS}`, orderData(i).total);
        return EVENTS;
      },
      teardown: () => {
        db.close();
        removeFile(path);
      },
    };
  },
};

function pgE2e(
  workload: string,
  name: string,
  concurrency: number,
  paced?: { rate: number; events: number },
  groupCommit = false,
  instances = 1,
  remote?: Remote,
): Subject {
  return {
    name,
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const factline = await loadFactlinePostgres();
      if (typeof factline === 'string') return factline;
      const schema = freshSchema('pipeline');
      return e2eTrial(
        workload,
        name,
        concurrency,
        async () => {
          const store: PostgresEventStore = await factline.getPostgresEventStore({
            connectionString: pgUrl,
            schema,
            poolSize: 16,
          });
          // One pool for the store, the transport and the inbox: the ack commits in the handler's transaction.
          const transport: PostgresTransport = await factline.getPostgresTransport({ pool: store.pool, schema });
          await store.pool.query(ITEMS_PG(schema));
          const text = INSERT_PG(schema);
          return {
            append: (stream, data) => store.append(stream, [{ type: 'ItemAdded', data }]),
            transport,
            inbox: await factline.getPostgresInbox({ pool: store.pool, schema, groupCommit }),
            insert: async (message, client: pg.PoolClient) => {
              await client.query({
                name: `items-${schema}`,
                text,
                values: [message.id, message.key, (message.data as Item).total],
              });
            },
            startRemote: (r, handled) =>
              startRemoteConsumers({
                adapter: 'postgres',
                where: pgUrl,
                schema,
                topic: TOPIC,
                ...r,
                groupCommit,
                handled,
              }),
            startRelay: () =>
              factline.startPostgresProjections(
                store,
                [defineEventRelay({ name: 'relay', transport, topic: TOPIC, handles: ['ItemAdded'] })],
                { batchSize: 1000 },
              ),
            close: async () => {
              await transport.close();
              await store.dropSchema();
              await store.close();
            },
          };
        },
        paced,
        instances,
        remote,
      );
    },
  };
}

/** The bare table work on PostgreSQL: `count` autocommit prepared INSERTs on one client. */
function pgRaw(count: number): Subject {
  return {
    name: 'raw',
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const schema = freshSchema('pipeline_raw');
      let client: pg.Client | undefined;
      return {
        setup: async () => {
          client = new pg.Client({ connectionString: pgUrl });
          await client.connect();
          await client.query(`CREATE SCHEMA "${schema}"`);
          await client.query(ITEMS_PG(schema));
        },
        run: async () => {
          const c = client as pg.Client;
          const text = INSERT_PG(schema);
          for (let i = 0; i < count; i++) {
            await c.query({
              name: 'items',
              text,
              values: [crypto.randomUUID(), `order-${i % STREAMS}`, orderData(i).total],
            });
          }
          return count;
        },
        teardown: async () => {
          await client?.end();
          await dropSchema(schema);
        },
      };
    },
  };
}

// ---- keys: consumer scaling on PostgreSQL ----

const keyRates = new Map<string, number[]>();
const keyRatios = new Set<string>();

function pgKeys(name: string, concurrency: number, groupCommit = false): Subject {
  return {
    name,
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const factline = await loadFactlinePostgres();
      if (typeof factline === 'string') return factline;
      const schema = freshSchema('pipeline_keys');
      let transport: PostgresTransport | undefined;
      let consumer: Consumer | undefined;
      const tracker = completion(KEYS_MESSAGES);
      return {
        setup: async () => {
          transport = await factline.getPostgresTransport({ connectionString: pgUrl, schema });
          const pool = transport.pool;
          await pool.query(ITEMS_PG(schema));
          const text = INSERT_PG(schema);
          const inbox = await factline.getPostgresInbox({ pool, schema, groupCommit });
          consumer = createConsumer({
            name: 'bench',
            topic: TOPIC,
            transport,
            inbox,
            concurrency,
            handler: async (message, client) => {
              const item = message.data as Item;
              await client.query({ name: `items-${schema}`, text, values: [message.id, message.key, item.total] });
              tracker.mark(item.i);
            },
          });
          // The group must exist before the publish for the messages to reach it.
          await consumer.start();
          await consumer.stop();
          for (let from = 0; from < KEYS_MESSAGES; from += 1000) {
            const batch = Array.from({ length: Math.min(1000, KEYS_MESSAGES - from) }, (_, j) =>
              createMessage({
                type: 'ItemAdded',
                key: `key-${(from + j) % KEYS}`,
                data: { i: from + j, total: orderData(from + j).total },
              }),
            );
            await transport.publish(TOPIC, batch);
          }
        },
        run: async () => {
          const started = performance.now();
          await consumer?.start();
          await tracker.done;
          const seconds = (performance.now() - started) / 1000;
          const list = keyRates.get(name) ?? [];
          list.push(KEYS_MESSAGES / seconds);
          keyRates.set(name, list);
          // The last trial of the workload reports the scaling figure from both subjects' medians.
          const one = keyRates.get('factline-1') ?? [];
          for (const wide of ['factline-8', 'factline-8-grouped']) {
            const rates = keyRates.get(wide) ?? [];
            if (one.length === KEYS_REPEAT && rates.length === KEYS_REPEAT && !keyRatios.has(wide)) {
              keyRatios.add(wide);
              report('pipeline-postgres-keys', `${wide}/factline-1`, median(rates) / median(one), 'x');
            }
          }
          return { units: KEYS_MESSAGES, seconds };
        },
        teardown: async () => {
          await consumer?.stop();
          await transport?.close();
          await dropSchema(schema);
        },
      };
    },
  };
}

export const pipelineWorkloads: Workload[] = [
  {
    name: 'pipeline-sqlite-e2e',
    description: `${EVENTS} single-event appends over ${STREAMS} streams (as fast as the store takes them) → event relay → SQLite transport (shared connection) → consumer (SQL inbox) with one INSERT per message; factline-N = one consumer with N lanes, factline-8x1 = 8 competing consumers of one lane each, factline-2proc-4 = 2 consumer processes (child processes, a connection each, polling every 5 ms) of 4 lanes each competing on one group; rate = first append → last handled; p50/p99 = append resolved → handled (µs); raw = the same ${EVENTS} INSERTs in a loop on one connection`,
    unit: 'messages/s',
    repeat: E2E_REPEAT,
    // Factline's path measured with its code optimized by the JIT, as the append workloads are.
    warmup: true,
    subjects: [
      sqliteE2e('pipeline-sqlite-e2e', 'factline-1', 1),
      sqliteE2e('pipeline-sqlite-e2e', 'factline-8', 8),
      sqliteE2e('pipeline-sqlite-e2e', 'factline-8x1', 1, undefined, 8),
      sqliteE2e('pipeline-sqlite-e2e', 'factline-2proc-4', 4, undefined, 1, { processes: 2, lanes: 4 }),
      sqliteRaw,
    ],
  },
  {
    name: 'pipeline-postgres-e2e',
    description: `${EVENTS} single-event appends over ${STREAMS} streams → event relay → PostgreSQL transport → consumer (SQL inbox; store, transport and inbox on one pool) with one INSERT per message; factline-N = one consumer with N lanes, factline-8x1 = 8 competing consumers of one lane each, factline-2proc-4 = 2 consumer processes (child processes, a pool each) of 4 lanes each competing on one group, -grouped = the inbox with group commit; rate = first append → last handled; p50/p99 = append resolved → handled (µs); raw = the same ${EVENTS} INSERTs in a loop on one client`,
    unit: 'messages/s',
    repeat: E2E_REPEAT,
    // Factline's path measured with its code optimized by the JIT, as the append workloads are.
    warmup: true,
    subjects: [
      pgE2e('pipeline-postgres-e2e', 'factline-1', 1),
      pgE2e('pipeline-postgres-e2e', 'factline-8', 8),
      pgE2e('pipeline-postgres-e2e', 'factline-8-grouped', 8, undefined, true),
      pgE2e('pipeline-postgres-e2e', 'factline-8x1', 1, undefined, false, 8),
      pgE2e('pipeline-postgres-e2e', 'factline-2proc-4', 4, undefined, false, 1, { processes: 2, lanes: 4 }),
      pgRaw(EVENTS),
    ],
  },
  {
    name: 'pipeline-sqlite-latency',
    description: `${PACED.events} single-event appends at a steady ${PACED.rate}/s over ${STREAMS} streams → event relay → SQLite transport → consumer (8 keys at once, SQL inbox, one INSERT per message); p50/p99 = append resolved → handler's transaction committed (µs)`,
    unit: 'messages/s',
    repeat: E2E_REPEAT,
    subjects: [sqliteE2e('pipeline-sqlite-latency', 'factline-8', 8, PACED)],
  },
  {
    name: 'pipeline-postgres-latency',
    description: `${PACED.events} single-event appends at a steady ${PACED.rate}/s over ${STREAMS} streams → event relay → PostgreSQL transport → consumer (8 keys at once, SQL inbox, one INSERT per message); p50/p99 = append resolved → handler's transaction committed (µs)`,
    unit: 'messages/s',
    repeat: E2E_REPEAT,
    subjects: [
      pgE2e('pipeline-postgres-latency', 'factline-8', 8, PACED),
      pgE2e('pipeline-postgres-latency', 'factline-8-grouped', 8, PACED, true),
    ],
  },
  {
    name: 'pipeline-postgres-keys',
    description: `${KEYS_MESSAGES} messages over ${KEYS} keys published to the PostgreSQL transport (untimed), drained by a consumer (SQL inbox on the transport's pool) doing one INSERT per message in the inbox's transaction; factline-8/factline-1 = the scaling figure; -grouped = the inbox with group commit`,
    unit: 'messages/s',
    repeat: KEYS_REPEAT,
    subjects: [pgKeys('factline-1', 1), pgKeys('factline-8', 8), pgKeys('factline-8-grouped', 8, true)],
  },
];
