/**
 * Emmett's SQLite event store (`@event-driven-io/emmett-sqlite`) running the same workloads as
 * Factline's SQLite benchmarks.
 *
 * The peer is installed into `bench/.peers` (never the project's own node_modules), so it is loaded
 * at run time from there (emmett-peer.ts, with the parts of Emmett's core both peers use) and typed
 * here only as far as these trials use it. When it is missing or does not load (e.g. the native
 * `sqlite3` module did not build), every factory returns the reason.
 *
 * Emmett's SQLite store as used here (defaults, nothing overridden):
 * - a file database opens a new `sqlite3.Database` for every operation and closes it afterwards;
 * - each connection runs `PRAGMA journal_mode = WAL`; it never sets `synchronous`, so SQLite's
 *   default FULL (2) applies; node-sqlite3 sets a 1,000 ms busy timeout;
 * - every append is a `BEGIN IMMEDIATE` transaction.
 * Under concurrency most appends fail with SQLITE_BUSY (surfacing as "cannot rollback - no
 * transaction is active", since Emmett rolls back after the failed BEGIN), and the per-connection
 * PRAGMA can raise an unhandled SQLITE_BUSY 'error' event: see `uncaughtBusyGuard`.
 */
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import type { Trial } from '../harness.ts';
import { orderData } from '../workloads/payload.ts';
import {
  type AppendResult,
  counterHandler,
  type EmmettEvent,
  type EmmettPeer,
  type EmmettReadEvent,
  emmettPeerLoader,
  type PullingOptions,
  placed,
} from './emmett-peer.ts';

// ---- the parts of Emmett's API these trials use ----

interface EmmettConsumer {
  processor(options: {
    processorId: string;
    startFrom?: 'BEGINNING' | 'END' | 'CURRENT';
    stopAfter?: (message: EmmettReadEvent) => boolean;
    eachMessage: (message: EmmettReadEvent) => Promise<void> | void;
  }): unknown;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

export interface EmmettStore {
  /** Reads the whole stream and folds it with `evolve` (Emmett has no snapshots). */
  aggregateStream<State>(
    streamName: string,
    options: { evolve: (state: State, event: EmmettReadEvent) => State; initialState: () => State },
  ): Promise<{ currentStreamVersion: bigint; state: State; streamExists: boolean }>;
  appendToStream(
    streamName: string,
    events: EmmettEvent[],
    options?: { expectedStreamVersion?: bigint },
  ): Promise<AppendResult>;
  readStream(streamName: string): Promise<{
    currentStreamVersion: bigint;
    events: EmmettReadEvent[];
    streamExists: boolean;
  }>;
  consumer(options?: { pulling?: PullingOptions }): EmmettConsumer;
  schema: { migrate(): Promise<void> };
}

interface EmmettConnection {
  close(): void;
  query<T>(sql: string, values?: unknown[]): Promise<T[]>;
}

interface EmmettSqliteModule {
  getSQLiteEventStore(options: { fileName: string }): EmmettStore;
  sqliteConnection(options: { fileName: string }): EmmettConnection;
}

export type Peer = EmmettPeer<EmmettSqliteModule, EmmettStore>;

export const loadPeer = emmettPeerLoader<EmmettSqliteModule, EmmettStore>(
  '@event-driven-io/emmett-sqlite',
  'getSQLiteEventStore',
);

/** An Emmett store on `<dir>/emmett.db` with its schema already created (outside the timed part). */
export async function openStore(peer: Peer, dir: string): Promise<EmmettStore> {
  const store = peer.adapter.getSQLiteEventStore({ fileName: join(dir, 'emmett.db') });
  await store.schema.migrate();
  return store;
}

/**
 * Counts, instead of dying on, the SQLITE_BUSY errors that node-sqlite3 emits as unhandled 'error'
 * events: Emmett opens each connection with a fire-and-forget `db.run('PRAGMA journal_mode = WAL;')`,
 * and when that statement hits SQLITE_BUSY under concurrency the error has no listener and would
 * otherwise crash the process. Any other uncaught error still ends the process. Installed for a
 * concurrent trial's run and removed at its teardown.
 */
function uncaughtBusyGuard(): { readonly count: number; stop: () => void } {
  let count = 0;
  const onUncaught = (error: unknown) => {
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : '';
    // Emmett's per-connection `PRAGMA journal_mode = WAL` also fails now and then with
    // "cannot change into wal mode from within a transaction", as an unhandled 'error' event;
    // the file is in WAL mode already, so the append goes on.
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || /cannot change into wal mode/.test(message)) {
      count++;
      return;
    }
    console.error(error);
    process.exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return {
    get count() {
      return count;
    },
    stop: () => {
      process.off('uncaughtException', onUncaught);
    },
  };
}

/**
 * The whole trial, setup to teardown, under `uncaughtBusyGuard`: Emmett's per-connection
 * `PRAGMA journal_mode = WAL` can raise its unhandled 'error' event in sequential workloads too
 * (seen in `sqlite-append-batch10`, where it ended a full `npm run bench`).
 */
export function guardEmmettTrial(trial: Trial): Trial {
  let guard: ReturnType<typeof uncaughtBusyGuard> | undefined;
  const { setup, teardown } = trial;
  return {
    ...trial,
    setup: async () => {
      guard = uncaughtBusyGuard();
      await setup?.();
    },
    teardown: async () => {
      try {
        await teardown?.();
      } finally {
        guard?.stop();
      }
    },
  };
}

/**
 * Emmett's SQLite calls sometimes never settle once SQLITE_BUSY surfaced as an unhandled 'error'
 * event; a call that has not settled after `ms` counts as failed (and `hung`), so the run goes on.
 */
let hung = 0;
function withDeadline<T>(work: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    work,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        hung++;
        reject(new Error(`no answer after ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const itemsAdded = (n: number): EmmettEvent[] =>
  Array.from({ length: n }, (_, j) => ({ type: 'ItemAdded', data: orderData(j) }));

/** The settings Emmett's own connections run with (journal_mode, synchronous, busy_timeout). */
export async function emmettSqliteSettings(dir: string): Promise<Record<string, string | number> | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  await openStore(peer, dir);
  const connection = peer.adapter.sqliteConnection({ fileName: join(dir, 'emmett.db') });
  try {
    const [journal] = await connection.query<{ journal_mode: string }>('PRAGMA journal_mode');
    const [sync] = await connection.query<{ synchronous: number }>('PRAGMA synchronous');
    const [busy] = await connection.query<{ timeout: number }>('PRAGMA busy_timeout');
    return {
      journal_mode: journal?.journal_mode ?? '?',
      synchronous: sync?.synchronous ?? -1,
      busy_timeout: busy?.timeout ?? -1,
    };
  } finally {
    connection.close();
  }
}

// ---- the trials ----

/** `count` single-event appends, each to a new stream, one at a time. Units: events. */
export async function emmettAppendSingle(dir: string, count: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  return {
    setup: async () => {
      store = await openStore(peer, dir);
    },
    run: async () => {
      const guard = uncaughtBusyGuard();
      try {
        for (let i = 0; i < count; i++) await store.appendToStream(`order-${i}`, [placed(i)]);
      } finally {
        guard.stop();
      }
      return count;
    },
  };
}

/**
 * Setup: `streams` streams of one event each. Run: `rounds` times, 10 events to each stream with the
 * exact expected version. Units: events appended in run.
 */
export async function emmettAppendBatch10(dir: string, streams: number, rounds: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  const versions: bigint[] = [];
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      for (let s = 0; s < streams; s++) {
        const result = await store.appendToStream(`cart-${s}`, [{ type: 'CartOpened', data: {} }]);
        versions[s] = result.nextExpectedStreamVersion;
      }
    },
    run: async () => {
      const events = itemsAdded(10);
      for (let round = 0; round < rounds; round++) {
        for (let s = 0; s < streams; s++) {
          const result = await store.appendToStream(`cart-${s}`, events, { expectedStreamVersion: versions[s] ?? 1n });
          versions[s] = result.nextExpectedStreamVersion;
        }
      }
      return rounds * streams * 10;
    },
  };
}

/**
 * 16 async writers started together on one store, each appending `perWriter` single events to its
 * own stream (awaiting each of its own appends), no expected version (Emmett's default).
 * Units: successful events; extras: failures (appends that threw), uncaught (SQLITE_BUSY errors
 * node-sqlite3 raised outside any promise; see `uncaughtBusyGuard`).
 */
export async function emmettConcurrent16(dir: string, perWriter: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  let failures = 0;
  let guard: ReturnType<typeof uncaughtBusyGuard> | undefined;
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      guard = uncaughtBusyGuard();
    },
    run: async () => {
      let appended = 0;
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < perWriter; i++) {
            try {
              await withDeadline(store.appendToStream(`writer-${w}`, [placed(i)]));
              appended++;
            } catch {
              failures++;
            }
          }
        }),
      );
      return appended;
    },
    extras: () => ({ failures, uncaught: guard?.count ?? 0 }),
    teardown: () => guard?.stop(),
  };
}

/**
 * 16 writers on 8 hot streams (writer w on stream w % 8), `perWriter` commands each through Emmett's
 * `DeciderCommandHandler`, with its own retry on version conflicts (Emmett's default policy for
 * `onVersionConflict: true`). The decider is a counter emitting one event per command.
 * Units: events appended; extras: retries (conflict retries taken), failures (commands that threw),
 * uncaught (as in `emmettConcurrent16`).
 */
export async function emmettHot16(dir: string, perWriter: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  let retries = 0;
  let failures = 0;
  let guard: ReturnType<typeof uncaughtBusyGuard> | undefined;
  const handle = counterHandler(peer.core, () => {
    retries++;
  });
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      guard = uncaughtBusyGuard();
    },
    run: async () => {
      let appended = 0;
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < perWriter; i++) {
            try {
              const result = await withDeadline(handle(store, `hot-${w % 8}`, { type: 'Add', data: { by: w } }));
              appended += result.newEvents.length;
            } catch {
              failures++;
            }
          }
        }),
      );
      return appended;
    },
    extras: () => ({ retries, failures, uncaught: guard?.count ?? 0, hung }),
    teardown: () => guard?.stop(),
  };
}

/** Setup: one stream of 1,000 events. Run: read it whole `reads` times. Units: events read. */
export async function emmettReadStream(dir: string, reads: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      for (let i = 0; i < 10; i++) await store.appendToStream('order-1', itemsAdded(100));
    },
    run: async () => {
      let read = 0;
      for (let i = 0; i < reads; i++) read += (await store.readStream('order-1')).events.length;
      return read;
    },
  };
}

/**
 * Setup: `total` events over 100 streams (appended 100 at a time). Run: one processor on Emmett's
 * SQLite consumer (`store.consumer()`) reads them all from the beginning; the run ends once it has
 * seen `total` events (or at the deadline). `pulling` defaults to Emmett's own (100 per batch,
 * 50 ms between batches). Units: events consumed; extras: timedOut (0 or 1).
 */
export async function emmettConsumerScan(
  dir: string,
  total: number,
  pulling: PullingOptions = {},
  deadlineMs = 120_000,
): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  let consumer: EmmettConsumer | undefined;
  let timedOut = 0;
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      for (let i = 0, batch = 0; i < total; i += 100, batch++) {
        const events = Array.from({ length: Math.min(100, total - i) }, (_, j) => placed(i + j));
        await store.appendToStream(`order-${batch % 100}`, events);
      }
    },
    run: async () => {
      let seen = 0;
      if (total <= 0) return 0;
      const activeConsumer = store.consumer({ pulling });
      consumer = activeConsumer;
      let reached: () => void = () => {};
      const done = new Promise<void>((resolve) => {
        reached = resolve;
      });
      activeConsumer.processor({
        processorId: 'bench-scan',
        startFrom: 'BEGINNING',
        eachMessage: () => {
          if (++seen >= total) reached();
        },
        stopAfter: () => seen >= total,
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      // start() resolves when pulling stops (the processor stops itself after `total` events).
      const pulled = activeConsumer.start();
      const outcome = await Promise.race([done, pulled, deadline]);
      clearTimeout(timer);
      if (outcome === 'deadline') timedOut = 1;
      await activeConsumer.stop();
      return seen;
    },
    extras: () => ({ timedOut }),
    // close() waits a fixed 250 ms inside Emmett: kept out of the timed part.
    teardown: async () => {
      await consumer?.close();
    },
  };
}

// ---- async projection catch-up ----

/** Emmett's SQLite projection API as the catch-up trial uses it. */
interface EmmettSqliteProjection {
  canHandle: string[];
}

interface EmmettSqliteProjectionModule {
  sqliteRawSQLProjection(options: {
    canHandle: string[];
    evolve: (event: EmmettReadEvent) => string;
    initSQL?: string;
  }): EmmettSqliteProjection;
}

interface EmmettProjectionConsumer {
  processor(options: {
    processorId: string;
    projection: EmmettSqliteProjection;
    stopAfter?: (message: EmmettReadEvent) => boolean;
  }): unknown;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Writes Emmett's SQLite log for the projection catch-up into `fileName` through Emmett's own
 * `appendToStream`: `events` `ItemAdded` events (payload.ts's orderData(j), j the index in the append),
 * 1,000 per append to stream `order-<append % streams>`, the shape of Factline's SQLite projection log.
 * Checks Emmett reads it back (the last stream's length, its last global position). Returns the
 * reason when Emmett is missing or the log reads back wrong.
 */
export async function emmettSqliteProjectionLog(
  fileName: string,
  events: number,
  streams: number,
): Promise<string | undefined> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  const store = peer.adapter.getSQLiteEventStore({ fileName });
  await store.schema.migrate();
  const perAppend = 1000;
  const appends = Math.ceil(events / perAppend);
  for (let i = 0; i < appends; i++) {
    await store.appendToStream(`order-${i % streams}`, itemsAdded(Math.min(perAppend, events - i * perAppend)));
  }
  const lastStream = `order-${(appends - 1) % streams}`;
  const read = await store.readStream(lastStream);
  const last = read.events[read.events.length - 1];
  const expected = Array.from({ length: appends }, (_, i) => i).filter((i) => i % streams === (appends - 1) % streams);
  const expectedLength = expected.reduce((sum, i) => sum + Math.min(perAppend, events - i * perAppend), 0);
  if (read.events.length !== expectedLength) return `readStream(${lastStream}) gave ${read.events.length}`;
  if (last?.metadata.globalPosition !== BigInt(events)) {
    return `${lastStream} ends at global position ${last?.metadata.globalPosition}, not ${events}`;
  }
  return undefined;
}

/**
 * Emmett's async projection catch-up on SQLite, in the shape of Factline's `projection-sqlite-catchup`,
 * over a log written by `emmettSqliteProjectionLog`:
 * - setup (untimed): the summary table `<table> (order_id, items, total)` created through Emmett's
 *   connection (Emmett's SQLite processor never calls a projection's `init`/`initSQL`: only the store's
 *   inline projections get it, at schema creation);
 * - run (timed): `store.consumer({ pulling })` with one `processor({ processorId, projection })` for a
 *   `sqliteRawSQLProjection` whose `evolve` returns one upsert per event (the processor hands the
 *   projection one event at a time). Processor defaults: start from the beginning (the SQLite processor
 *   reads its checkpoint only for `startFrom: 'CURRENT'`), each pulled batch in one `BEGIN IMMEDIATE`
 *   transaction on a connection opened for the batch, a checkpoint write after every event (an UPDATE
 *   matching the previous event's position, else an INSERT, else a SELECT). Ends when `consumer.start()`
 *   resolves (`stopAfter` on the log's last event);
 * - after the clock: the read model must count every event once (else the trial fails); extras:
 *   checkpointLag = the log's last position minus the checkpoint Emmett stored.
 * Units: events projected.
 */
export async function emmettSqliteProjectionCatchUp(
  fileName: string,
  plan: { events: number; streams: number; table: string; pulling?: PullingOptions },
): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  const api = peer.adapter as unknown as EmmettSqliteProjectionModule;
  if (typeof api.sqliteRawSQLProjection !== 'function') return 'the installed Emmett lacks sqliteRawSQLProjection';
  const { table } = plan;
  const processorId = `projection:${table}`;
  let checkpointLag = 0;
  let consumer: EmmettProjectionConsumer | undefined;
  // The untimed bookkeeping (table, checks, cleanup) goes through better-sqlite3: Emmett's own
  // connections start with a fire-and-forget PRAGMA that can collide with the next statement.
  const withDatabase = <T>(work: (db: Sqlite.Database) => T): T => {
    const db = new Sqlite(fileName);
    db.pragma('busy_timeout = 5000');
    try {
      return work(db);
    } finally {
      db.close();
    }
  };
  return {
    setup: () =>
      withDatabase((db) => {
        db.exec(
          `CREATE TABLE IF NOT EXISTS ${table} (order_id TEXT PRIMARY KEY, items INTEGER NOT NULL, total REAL NOT NULL)`,
        );
      }),
    run: async () => {
      const head = BigInt(plan.events);
      const store = peer.adapter.getSQLiteEventStore({ fileName });
      const projection = api.sqliteRawSQLProjection({
        canHandle: ['ItemAdded'],
        evolve: (event) =>
          `INSERT INTO ${table} (order_id, items, total) VALUES ('${event.metadata.streamName.replaceAll("'", "''")}', 1, ${Number((event.data as { total: number }).total)})
           ON CONFLICT (order_id) DO UPDATE SET items = items + 1, total = total + excluded.total`,
      });
      const active = store.consumer(
        plan.pulling ? { pulling: plan.pulling } : undefined,
      ) as unknown as EmmettProjectionConsumer;
      consumer = active;
      active.processor({ processorId, projection, stopAfter: (message) => message.metadata.globalPosition >= head });
      const started = process.hrtime.bigint();
      await active.start();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const sums = withDatabase(
        (db) =>
          db.prepare(`SELECT count(*) AS orders, sum(items) AS items FROM ${table}`).get() as
            | { orders: number; items: number | null }
            | undefined,
      );
      if (sums?.items !== plan.events || sums.orders !== Math.min(plan.streams, Math.ceil(plan.events / 1000))) {
        throw new Error(`Emmett's SQLite projection ended wrong: ${JSON.stringify(sums)} for ${plan.events} events`);
      }
      const checkpoint = withDatabase(
        (db) =>
          db
            .prepare('SELECT last_processed_checkpoint AS checkpoint FROM emt_processors WHERE processor_id = ?')
            .get(processorId) as { checkpoint: string } | undefined,
      );
      checkpointLag = plan.events - Number(checkpoint?.checkpoint ?? 0);
      return { units: plan.events, seconds };
    },
    extras: () => ({ checkpointLag }),
    // close() waits a fixed 250 ms inside Emmett: kept out of the timed part.
    teardown: async () => {
      await consumer?.close();
      withDatabase((db) => {
        db.exec(`DROP TABLE IF EXISTS ${table}`);
        db.prepare('DELETE FROM emt_processors WHERE processor_id = ?').run(processorId);
      });
    },
  };
}
