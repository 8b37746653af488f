/**
 * PostgreSQL workloads: Factline's store against plain drivers and Emmett on the same server.
 *
 * Server: FACTLINE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); when it does not
 * answer, every subject is skipped with the reason. Every trial works in a fresh schema
 * (`bench_<subject>_<pid>_<random>`) that its teardown drops, so runs never see each other's data.
 *
 * Subjects:
 * - `factline`: `getPostgresEventStore({ connectionString, schema })` with its defaults;
 * - `raw`: node-postgres (`pg`, the driver Factline uses), one autocommit INSERT per event (a named,
 *   i.e. prepared, statement) into an events-shaped table (see `RAW_TABLE`), on one `pg.Client`, or a
 *   `pg.Pool` of 16 for the concurrent workload;
 * - `raw-postgresjs`: the same table and statement with postgres.js (`postgres` v3, from bench/.peers,
 *   prepared statements), on one connection or 16: the driver choice side by side;
 * - `emmett`: `@event-driven-io/emmett-postgresql` with its defaults (see peers/emmett-postgres.ts).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Decider, type Event, handleCommand } from '@factline/core';
import type { PostgresEventStore } from '@factline/postgres';
import pg from 'pg';
import type { Subject, Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';

export const pgUrl = process.env.FACTLINE_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

type FactlinePostgres = typeof import('@factline/postgres');
let factlinePostgres: Promise<FactlinePostgres | string> | undefined;

/**
 * `@factline/postgres`, loaded on first use, so that a broken or missing package skips the Factline
 * subjects instead of every workload (the SQLite ones included).
 */
export function loadFactlinePostgres(): Promise<FactlinePostgres | string> {
  factlinePostgres ??= import('@factline/postgres').catch(
    (error: Error) => `@factline/postgres failed to load: ${error.message}`,
  );
  return factlinePostgres;
}

let availability: Promise<string | undefined> | undefined;

/** Undefined when the server answers; otherwise why every PostgreSQL subject is skipped. */
export function pgUnavailable(): Promise<string | undefined> {
  availability ??= (async () => {
    const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
    } catch (error) {
      return `PostgreSQL at ${pgUrl.replace(/\/\/[^@/]*@/, '//')} does not answer: ${(error as Error).message}`;
    }
    try {
      await client.query('SELECT 1');
      return undefined;
    } catch (error) {
      return `PostgreSQL at ${pgUrl.replace(/\/\/[^@/]*@/, '//')} fails a query: ${(error as Error).message}`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return availability;
}

/** A schema name no other trial or run uses (matches Factline's ^[a-z_][a-z0-9_]*$). */
export function freshSchema(tag: string): string {
  return `bench_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Runs `work` on a short-lived plain connection (schema creation and removal, seeding, checks). */
export async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export const dropSchema = (schema: string) => withAdmin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));

/** The raw subjects' table: what an events table needs, without Factline's extra columns. */
export const RAW_TABLE = (schema: string) => `CREATE SCHEMA ${schema};
CREATE TABLE ${schema}.events (
  position bigserial PRIMARY KEY,
  event_id text NOT NULL UNIQUE,
  stream_id text NOT NULL,
  stream_version bigint NOT NULL,
  type text NOT NULL,
  data json NOT NULL,
  metadata json NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream_id, stream_version)
)`;

const rawInsertSql = (schema: string) =>
  `INSERT INTO ${schema}.events (event_id, stream_id, stream_version, type, data, metadata)
   VALUES ($1, $2, $3, $4, $5, $6)`;

// ---- subjects ----

/** A trial on a fresh Factline store in a fresh schema, dropped at teardown. */
function factlineSubject(
  work: (store: PostgresEventStore) => Promise<number | { units: number; seconds: number }>,
  options: { extras?: (store: PostgresEventStore) => Record<string, number>; repeat?: number } = {},
): Subject {
  return {
    name: 'factline',
    ...(options.repeat === undefined ? {} : { repeat: options.repeat }),
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const factline = await loadFactlinePostgres();
      if (typeof factline === 'string') return factline;
      const schema = freshSchema('factline');
      let store: PostgresEventStore | undefined;
      const trial: Trial = {
        setup: async () => {
          store = await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
        },
        run: () => {
          if (!store) throw new Error('factline store not opened');
          return work(store);
        },
        teardown: async () => {
          if (store) {
            await store.dropSchema();
            await store.close();
          } else {
            await dropSchema(schema);
          }
        },
      };
      const extras = options.extras;
      if (extras) trial.extras = () => (store ? extras(store) : {});
      return trial;
    },
  };
}

/** What a raw trial writes with: one prepared autocommit INSERT of one event. */
type RawInsert = (streamId: string, version: number, data: unknown) => Promise<unknown>;

/** `raw`: node-postgres on one Client (`connections` 1) or a Pool of `connections`. */
function rawPgSubject(connections: number, work: (insert: RawInsert) => Promise<number>): Subject {
  return {
    name: 'raw',
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const schema = freshSchema('raw');
      const text = rawInsertSql(schema);
      let db: pg.Client | pg.Pool | undefined;
      return {
        setup: async () => {
          await withAdmin((c) => c.query(RAW_TABLE(schema)));
          if (connections === 1) {
            const client = new pg.Client({ connectionString: pgUrl });
            await client.connect();
            db = client;
          } else {
            db = new pg.Pool({ connectionString: pgUrl, max: connections });
          }
        },
        run: () => {
          const target = db;
          if (!target) throw new Error('raw connection not opened');
          return work((streamId, version, data) =>
            target.query({
              name: 'raw_insert',
              text,
              values: [crypto.randomUUID(), streamId, version, 'OrderPlaced', data, {}],
            }),
          );
        },
        teardown: async () => {
          await db?.end();
          await dropSchema(schema);
        },
      };
    },
  };
}

// postgres.js, loaded from bench/.peers and typed only as far as used here.
interface PostgresJs {
  unsafe(query: string, parameters: unknown[], options: { prepare: boolean }): Promise<unknown>;
  end(options?: { timeout?: number }): Promise<void>;
}
type PostgresJsFactory = (url: string, options: { max: number; onnotice?: () => void }) => PostgresJs;

let postgresJs: PostgresJsFactory | string | undefined;
function loadPostgresJs(): PostgresJsFactory | string {
  if (postgresJs !== undefined) return postgresJs;
  const peersDir = fileURLToPath(new URL('../../.peers/', import.meta.url));
  try {
    const loaded = createRequire(join(peersDir, 'package.json'))('postgres') as
      | PostgresJsFactory
      | { default: PostgresJsFactory };
    postgresJs = typeof loaded === 'function' ? loaded : loaded.default;
  } catch (error) {
    postgresJs = `postgres.js is not installed in ${peersDir}: ${(error as Error).message}`;
  }
  return postgresJs;
}

/** `raw-postgresjs`: postgres.js with at most `connections` connections, prepared statements. */
function rawPostgresJsSubject(connections: number, work: (insert: RawInsert) => Promise<number>): Subject {
  return {
    name: 'raw-postgresjs',
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const factory = loadPostgresJs();
      if (typeof factory === 'string') return factory;
      const schema = freshSchema('rawjs');
      const text = rawInsertSql(schema);
      let sql: PostgresJs | undefined;
      return {
        setup: async () => {
          await withAdmin((c) => c.query(RAW_TABLE(schema)));
          sql = factory(pgUrl, { max: connections, onnotice: () => {} });
          // Open (and type-fetch) the connection outside the timed part.
          await sql.unsafe('SELECT 1', [], { prepare: false });
        },
        run: () => {
          const target = sql;
          if (!target) throw new Error('postgres.js not opened');
          // postgres.js serialises the json parameters itself (from the prepared statement's types).
          return work((streamId, version, data) =>
            target.unsafe(text, [crypto.randomUUID(), streamId, version, 'OrderPlaced', data, {}], { prepare: true }),
          );
        },
        teardown: async () => {
          await sql?.end({ timeout: 5 });
          await dropSchema(schema);
        },
      };
    },
  };
}

type PeerModule = typeof import('../peers/emmett-postgres.ts');
let peer: PeerModule | string | undefined;
async function emmett(): Promise<PeerModule | string> {
  if (peer === undefined) {
    peer = await import('../peers/emmett-postgres.ts').then(
      (module) => module.emmettPostgresUnavailable() ?? module,
      (error: Error) => `emmett peer unavailable: ${error.message}`,
    );
  }
  return peer;
}

/** `emmett` on a fresh schema (created here, dropped at teardown). */
function emmettSubject(
  make: (peer: PeerModule, url: string, schema: string) => Promise<Trial | string>,
  repeat?: number,
): Subject {
  return {
    name: 'emmett',
    // A peer's crash or stray error event fails its figure only, not the run.
    isolate: true,
    ...(repeat === undefined ? {} : { repeat }),
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      const loaded = await emmett();
      if (typeof loaded === 'string') return loaded;
      const schema = freshSchema('emmett');
      await withAdmin((c) => c.query(`CREATE SCHEMA ${schema}`));
      let trial: Trial | string;
      try {
        trial = await make(loaded, pgUrl, schema);
      } catch (error) {
        await dropSchema(schema);
        throw error;
      }
      if (typeof trial === 'string') {
        await dropSchema(schema);
        return trial;
      }
      const teardown = trial.teardown;
      trial.teardown = async () => {
        await teardown?.();
        await dropSchema(schema);
      };
      return trial;
    },
  };
}

// ---- workloads ----

type Added = Event<'Added', { by: number }>;
const counter: Decider<number, { by: number }, Added> = {
  initialState: () => 0,
  evolve: (n) => n + 1,
  decide: (command) => [{ type: 'Added', data: command }],
};

const SINGLE = 4000;
const PER_WRITER = 100;
const HOT_COMMANDS = 50;
const GAP = { writers: 16, total: 20_000, shared: 4 };
const GAP_PAGE = 100;
/** The reader's pause after a page that was not full (Emmett's consumer: 50 ms, or 100 ms to 1 s when idle). */
const GAP_POLL_MS = 5;

/** Reader positions against the log's: events the reader never saw, and events it saw twice or more. */
function compareReads(seen: readonly number[], log: readonly number[]): { missed: number; duplicates: number } {
  const unique = new Set(seen);
  let missed = 0;
  for (const position of log) if (!unique.has(position)) missed++;
  return { missed, duplicates: seen.length - unique.size };
}

/** 16 writers, `perWriter` single-event appends each to their own stream, exact expected version. */
async function concurrentWriters(append: (writer: number, i: number) => Promise<unknown>): Promise<number> {
  let failures = 0;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; i < PER_WRITER; i++) await append(w, i).catch(() => failures++);
    }),
  );
  return failures;
}

const singleAppends = async (insert: RawInsert) => {
  for (let i = 0; i < SINGLE; i++) await insert(`order-${i}`, 1, orderData(i));
  return SINGLE;
};

const concurrentInserts = async (insert: RawInsert) =>
  16 * PER_WRITER - (await concurrentWriters((w, i) => insert(`writer-${w}`, i + 1, orderData(i))));

/** Factline's gap check (see the workload's description). */
function factlineGapCheck(): Subject {
  const result = { missed: 0, duplicates: 0, lagMs: 0 };
  return factlineSubject(
    async (store) => {
      const perWriter = Math.ceil(GAP.total / GAP.writers);
      const seen: number[] = [];
      let writersDone = false;
      let written = 0;
      const started = process.hrtime.bigint();
      const reader = (async () => {
        let checkpoint = 0;
        let caughtUp = false;
        for (;;) {
          // Every page is a new readAll resuming after the saved position, as a restarted reader would.
          let page = 0;
          for await (const event of store.readAll({ after: checkpoint, limit: GAP_PAGE, batchSize: GAP_PAGE })) {
            seen.push(event.position);
            checkpoint = event.position;
            page++;
          }
          if (page === GAP_PAGE) continue;
          if (page === 0 && caughtUp) return;
          if (page === 0 && writersDone && checkpoint >= (await store.headPosition())) {
            result.lagMs = Number(process.hrtime.bigint() - started) / 1e6 - written * 1000;
            // One more page after catching up: it must be empty.
            caughtUp = true;
            continue;
          }
          await new Promise((resolve) => setTimeout(resolve, GAP_POLL_MS));
        }
      })();
      await Promise.all(
        Array.from({ length: GAP.writers }, async (_, w) => {
          let own = 0;
          for (let k = 0; k < perWriter && w * perWriter + k < GAP.total; k++) {
            const event = [{ type: 'OrderPlaced', data: orderData(k) }];
            if (k % 2 === 0) own = (await store.append(`gap-${w}`, event, { expectedVersion: own })).version;
            else await store.append(`shared-${(w + k) % GAP.shared}`, event, { expectedVersion: 'any' });
          }
        }),
      );
      written = Number(process.hrtime.bigint() - started) / 1e9;
      writersDone = true;
      await reader;
      const log: number[] = [];
      for await (const event of store.readAll()) log.push(event.position);
      if (log.length !== GAP.total) throw new Error(`the log holds ${log.length} events, not ${GAP.total}`);
      Object.assign(result, compareReads(seen, log));
      return { units: GAP.total, seconds: written };
    },
    { extras: () => ({ ...result }) },
  );
}

export const postgresWorkloads: Workload[] = [
  {
    name: 'postgres-append-single',
    warmup: true,
    repeat: 5,
    description: `${SINGLE} single-event appends, each to a new stream, one at a time (raw: one autocommit prepared INSERT each)`,
    unit: 'events/s',
    subjects: [
      factlineSubject(async (store) => {
        for (let i = 0; i < SINGLE; i++) {
          await store.append(`order-${i}`, [{ type: 'OrderPlaced', data: orderData(i) }], {
            expectedVersion: 'no-stream',
          });
        }
        return SINGLE;
      }),
      rawPgSubject(1, singleAppends),
      rawPostgresJsSubject(1, singleAppends),
      emmettSubject((p, url, schema) => p.emmettPgAppendSingle(url, schema, SINGLE)),
    ],
  },
  {
    name: 'postgres-append-concurrent16',
    warmup: true,
    description: `16 async writers in one process, ${PER_WRITER} single-event appends each to their own stream with the exact expected version (raw: 16 connections, one INSERT per transaction)`,
    unit: 'events/s',
    subjects: [
      (() => {
        let failures = 0;
        return factlineSubject(
          async (store) => {
            failures = await concurrentWriters((w, i) =>
              store.append(`writer-${w}`, [{ type: 'OrderPlaced', data: orderData(i) }], { expectedVersion: i }),
            );
            return 16 * PER_WRITER - failures;
          },
          { extras: (store) => ({ failures, commits: store.stats().commits }) },
        );
      })(),
      rawPgSubject(16, concurrentInserts),
      rawPostgresJsSubject(16, concurrentInserts),
      emmettSubject((p, url, schema) => p.emmettPgConcurrent16(url, schema, PER_WRITER)),
    ],
  },
  {
    name: 'postgres-append-hot8',
    warmup: true,
    description: `16 writers on 8 hot streams through handleCommand (read, decide, append, retry on conflict), ${HOT_COMMANDS} commands each (emmett: its DeciderCommandHandler with its default conflict retry)`,
    unit: 'events/s',
    subjects: [
      (() => {
        let retries = 0;
        let failures = 0;
        return factlineSubject(
          async (store) => {
            retries = 0;
            failures = 0;
            await Promise.all(
              Array.from({ length: 16 }, async (_, w) => {
                for (let i = 0; i < HOT_COMMANDS; i++) {
                  await handleCommand(store, `hot-${w % 8}`, { by: w }, counter, { maxAttempts: 100 })
                    .then((r) => {
                      retries += r.attempts - 1;
                    })
                    .catch(() => {
                      failures++;
                    });
                }
              }),
            );
            return 16 * HOT_COMMANDS - failures;
          },
          { extras: () => ({ retries, failures }) },
        );
      })(),
      emmettSubject((p, url, schema) => p.emmettPgHot8(url, schema, HOT_COMMANDS)),
    ],
  },
  {
    name: 'postgres-gap-check',
    description: `${GAP.writers} writers append ${GAP.total.toLocaleString('en')} single events (own streams with the exact version, ${GAP.shared} shared streams with none) while a reader follows the log, resuming from its saved position every page of ${GAP_PAGE} (polling every ${GAP_POLL_MS} ms when not on a full page); rate = events/s of the write phase; missed/duplicates = reader against a fresh full read; lagMs = writers done to reader caught up (emmett: its consumer with one reactor, default pulling)`,
    unit: 'events/s',
    subjects: [factlineGapCheck(), emmettSubject((p, url, schema) => p.emmettPgGapCheck(url, schema, GAP))],
  },
];
