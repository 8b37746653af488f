/**
 * Emmett's PostgreSQL event store (`@event-driven-io/emmett-postgresql`) running the same workloads as
 * Factline's PostgreSQL benchmarks.
 *
 * The peer is installed into `bench/.peers` (never the project's own node_modules), so it is loaded
 * at run time from there (emmett-peer.ts, with the parts of Emmett's core both peers use) and typed
 * here only as far as these trials use it. When it is missing or does not load, every factory
 * returns the reason.
 *
 * Emmett's PostgreSQL store as used here (`getPostgreSQLEventStore(connectionString)`, defaults,
 * nothing overridden):
 * - connections: dumbo's node-postgres `pg.Pool`, one per connection string, with pg's defaults
 *   (at most 10 connections); the `pg` it uses is its own copy in bench/.peers, on which dumbo installs
 *   global json/jsonb type parsers (so they never touch the `pg` Factline and the raw subjects use);
 * - tables and functions are unqualified (`emt_streams`, `emt_messages` partitioned by partition, both
 *   jsonb), so they land in the connection's search_path: each trial gets its own schema through
 *   `?options=-c search_path=<schema>` in the connection string. The schema migrations run on first
 *   use (auto-migration); the trials run `schema.migrate()` in setup, outside the timed part;
 * - Emmett's migrations create each `emt_*` function only if no function of that name exists in
 *   *any* schema (`SELECT 1 FROM pg_proc WHERE proname = …`), so two Emmett schemas cannot live in one
 *   database: the second would get tables but no functions. A trial refuses to start (with the
 *   reason) when another schema holds `emt_append_to_stream`;
 * - every append is one transaction (`BEGIN`; `SELECT * FROM emt_append_to_stream(…)` with every
 *   value inlined as an SQL literal, no bind parameters or prepared statement; `COMMIT`): three round
 *   trips. The function inserts or updates the stream's row in `emt_streams` (the version check: an
 *   update matching no row, or a unique violation, is an `ExpectedVersionConflictError`), then inserts
 *   the messages with positions from the `emt_global_message_position` sequence;
 * - no expected version, `STREAM_DOES_NOT_EXIST` and `STREAM_EXISTS` all mean "no check": the function
 *   then reads the stream's current version itself, so two such appends racing on one stream can
 *   still fail with a version conflict;
 * - the consumer (`store.consumer()` + `reactor`) pulls 100 messages per batch, waits 50 ms between
 *   batches while more are left and backs off from 100 ms to 1 s when idle; it reads rows whose
 *   `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`, ordered by (transaction_id,
 *   global_position), and resumes after the global position of the batch's last message. Concurrent
 *   appends take transaction ids and positions in different orders, so when a batch ends between two
 *   such transactions the next one skips the lower position (or re-reads the higher ones): the
 *   gap check counts those as `missed` and `duplicates`.
 */
import pg from 'pg';
import type { Trial } from '../harness.ts';
import {
  type AppendResult,
  counterHandler,
  type EmmettEvent,
  type EmmettPeer,
  type EmmettReadEvent,
  emmettPeerLoader,
  type PullingOptions,
  peersDir,
  placed,
  requirePeer,
} from './emmett-peer.ts';

// ---- the parts of Emmett's API these trials use ----

interface EmmettConsumer {
  reactor(options: {
    processorId: string;
    startFrom?: 'BEGINNING' | 'END' | 'CURRENT';
    eachMessage: (message: EmmettReadEvent) => Promise<void> | void;
  }): unknown;
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface EmmettStore {
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
  schema: { migrate(): Promise<unknown> };
  close(): Promise<void>;
}

interface EmmettPostgresModule {
  getPostgreSQLEventStore(connectionString: string): EmmettStore;
}

type Peer = EmmettPeer<EmmettPostgresModule, EmmettStore>;

const loadPeer = emmettPeerLoader<EmmettPostgresModule, EmmettStore>(
  '@event-driven-io/emmett-postgresql',
  'getPostgreSQLEventStore',
);

/** Whether the Emmett peer loads; the reason when it does not. */
export function emmettPostgresUnavailable(): string | undefined {
  const peer = loadPeer();
  return typeof peer === 'string' ? peer : undefined;
}

/** `url` with every new connection's search_path set to `schema` (a libpq `options` parameter). */
export function withSearchPath(url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** Runs `work` on one plain node-postgres connection whose search_path is `schema`. */
async function withClient<T>(url: string, schema: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withSearchPath(url, schema) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * An Emmett store whose tables live in `schema` (which must exist), migrated outside the timed part;
 * or the reason it cannot be made (see the header on Emmett's `pg_proc` checks).
 */
async function openStore(peer: Peer, url: string, schema: string): Promise<EmmettStore | string> {
  const elsewhere = await withClient(url, schema, async (client) => {
    const { rows } = await client.query<{ nspname: string }>(
      `SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE p.proname = 'emt_append_to_stream' AND n.nspname <> $1`,
      [schema],
    );
    return rows.map((row) => row.nspname);
  });
  if (elsewhere.length > 0) {
    return `another schema (${elsewhere.join(', ')}) holds Emmett's functions; Emmett would create none in ${schema}`;
  }
  const store = peer.adapter.getPostgreSQLEventStore(withSearchPath(url, schema));
  await store.schema.migrate();
  return store;
}

/**
 * A trial on a fresh Emmett store in `schema`: `prepare` (untimed) may seed it, `work` is timed.
 * The store is closed at teardown (dropping the schema is the caller's).
 */
async function storeTrial(
  url: string,
  schema: string,
  work: (store: EmmettStore) => Promise<number | { units: number; seconds: number }>,
  extras?: () => Record<string, number>,
): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  const opened = await openStore(peer, url, schema);
  if (typeof opened === 'string') return opened;
  const store = opened;
  const trial: Trial = {
    run: () => work(store),
    teardown: () => store.close(),
  };
  if (extras) trial.extras = extras;
  return trial;
}

// ---- the trials (each takes the base URL and an existing, empty schema) ----

/** `count` single-event appends, each to a new stream, one at a time. Units: events. */
export function emmettPgAppendSingle(url: string, schema: string, count: number): Promise<Trial | string> {
  return storeTrial(url, schema, async (store) => {
    for (let i = 0; i < count; i++) await store.appendToStream(`order-${i}`, [placed(i)]);
    return count;
  });
}

/**
 * 16 async writers started together on one store, each appending `perWriter` single events to its
 * own stream with the exact expected version. Units: successful events; extras: failures.
 */
export function emmettPgConcurrent16(url: string, schema: string, perWriter: number): Promise<Trial | string> {
  let failures = 0;
  return storeTrial(
    url,
    schema,
    async (store) => {
      let appended = 0;
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          let version = 0n;
          for (let i = 0; i < perWriter; i++) {
            try {
              const result = await store.appendToStream(`writer-${w}`, [placed(i)], { expectedStreamVersion: version });
              version = result.nextExpectedStreamVersion;
              appended++;
            } catch {
              failures++;
            }
          }
        }),
      );
      return appended;
    },
    () => ({ failures }),
  );
}

/**
 * 16 writers on 8 hot streams (writer w on stream w % 8), `perWriter` commands each through Emmett's
 * `DeciderCommandHandler`, with its own retry on version conflicts (Emmett's default policy for
 * `onVersionConflict: true`). The decider is a counter emitting one event per command.
 * Units: events appended; extras: retries (conflict retries taken), failures (commands that threw).
 */
export function emmettPgHot8(url: string, schema: string, perWriter: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return Promise.resolve(peer);
  let retries = 0;
  let failures = 0;
  const handle = counterHandler(peer.core, () => {
    retries++;
  });
  return storeTrial(
    url,
    schema,
    async (store) => {
      let appended = 0;
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < perWriter; i++) {
            try {
              const result = await handle(store, `hot-${w % 8}`, { type: 'Add', data: { by: w } });
              appended += result.newEvents.length;
            } catch {
              failures++;
            }
          }
        }),
      );
      return appended;
    },
    () => ({ retries, failures }),
  );
}

/** Reader positions against the log's: events the reader never saw, and events it saw twice or more. */
function compare(seen: readonly number[], log: readonly number[]): { missed: number; duplicates: number } {
  const unique = new Set(seen);
  let missed = 0;
  for (const position of log) if (!unique.has(position)) missed++;
  return { missed, duplicates: seen.length - unique.size };
}

export interface GapCheckPlan {
  writers: number;
  /** Events appended in all (one per append), split evenly over the writers. */
  total: number;
  /** Shared streams every writer also appends to (no expected version). */
  shared: number;
}

/**
 * Writers append `plan.total` single events (even appends to the writer's own stream with the exact
 * expected version, odd ones to one of `plan.shared` shared streams with no expected version, retried
 * on conflict) while one reactor on Emmett's consumer (`store.consumer()`, default pulling) follows
 * the log from the beginning. Once the writers are done, the run waits until the reactor has seen the
 * highest global position, then (untimed) until it has been quiet for 2.5 s (more than its longest
 * idle back-off, so late re-deliveries show), and compares what it saw with a fresh read of the whole
 * table. Units: events per second of the write phase; extras: missed, duplicates, retries, lagMs
 * (writers done to reactor caught up), timedOut.
 */
export function emmettPgGapCheck(
  url: string,
  schema: string,
  plan: GapCheckPlan,
  deadlineMs = 120_000,
): Promise<Trial | string> {
  const result = { missed: 0, duplicates: 0, retries: 0, lagMs: 0, timedOut: 0 };
  return storeTrial(
    url,
    schema,
    async (store) => {
      const seen: number[] = [];
      let maxSeen = 0;
      const consumer = store.consumer();
      consumer.reactor({
        processorId: 'bench-gap-check',
        startFrom: 'BEGINNING',
        eachMessage: (message) => {
          const position = Number(message.metadata.globalPosition);
          seen.push(position);
          maxSeen = Math.max(maxSeen, position);
        },
      });
      const pulling = consumer.start();
      const perWriter = Math.ceil(plan.total / plan.writers);
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: plan.writers }, async (_, w) => {
          let own = 0n;
          for (let k = 0; k < perWriter && w * perWriter + k < plan.total; k++) {
            if (k % 2 === 0) {
              own = (await store.appendToStream(`gap-${w}`, [placed(k)], { expectedStreamVersion: own }))
                .nextExpectedStreamVersion;
              continue;
            }
            for (let attempt = 1; ; attempt++) {
              try {
                await store.appendToStream(`shared-${(w + k) % plan.shared}`, [placed(k)]);
                break;
              } catch (error) {
                if (attempt >= 100) throw error;
                result.retries++;
              }
            }
          }
        }),
      );
      const written = Number(process.hrtime.bigint() - started) / 1e9;
      const log = await withClient(url, schema, async (client) => {
        const { rows } = await client.query<{ p: string }>(
          'SELECT global_position::text AS p FROM emt_messages ORDER BY global_position',
        );
        return rows.map((row) => Number(row.p));
      });
      const head = log[log.length - 1] ?? 0;
      const deadline = Date.now() + deadlineMs;
      while (maxSeen < head && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
      result.lagMs = Number(process.hrtime.bigint() - started) / 1e6 - written * 1000;
      if (maxSeen < head) result.timedOut = 1;
      for (let count = -1; count !== seen.length && Date.now() < deadline; ) {
        count = seen.length;
        await new Promise((resolve) => setTimeout(resolve, 2500));
      }
      await consumer.stop();
      await pulling.catch(() => {});
      Object.assign(result, compare(seen, log));
      return { units: plan.total, seconds: written };
    },
    () => ({ ...result }),
  );
}

// ---- async projection catch-up ----

/** The parts of Emmett's projection API the catch-up trial uses (`postgreSQLRawSQLProjection`, `projector`). */
interface EmmettProjection {
  name?: string;
}

interface EmmettProjectionModule {
  postgreSQLRawSQLProjection(options: {
    name: string;
    canHandle: string[];
    init?: () => string;
    evolve: (event: EmmettReadEvent) => string;
  }): EmmettProjection;
  defaultTag: string;
}

interface EmmettProjectorConsumer {
  projector(options: { projection: EmmettProjection; stopAfter?: (message: EmmettReadEvent) => boolean }): unknown;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** dumbo's `sql`: pg-format style (`%L` a literal, `%s` a plain value, `%I` an identifier). */
interface DumboModule {
  sql(query: string, ...params: unknown[]): string;
}

function loadProjectionApi(): { emmett: EmmettProjectionModule; dumbo: DumboModule } | string {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  try {
    const emmett = peer.adapter as unknown as EmmettProjectionModule;
    const dumbo = requirePeer('@event-driven-io/dumbo') as DumboModule;
    if (typeof emmett.postgreSQLRawSQLProjection !== 'function' || typeof dumbo.sql !== 'function') {
      return 'the installed Emmett packages lack postgreSQLRawSQLProjection or dumbo.sql';
    }
    return { emmett, dumbo };
  } catch (error) {
    return `dumbo failed to load from ${peersDir}: ${(error as Error).message}`;
  }
}

/** The columns of `emt_messages` that the SQL seeding writes (all the others have defaults). */
const SEEDED_MESSAGE_COLUMNS = [
  'global_position',
  'message_data',
  'message_id',
  'message_kind',
  'message_metadata',
  'message_schema_version',
  'message_type',
  'partition',
  'stream_id',
  'stream_position',
  'transaction_id',
];

/**
 * Seeds a migrated Emmett store in `schema` with `events` `ItemAdded` events over `streams` streams
 * (`order-<k>`), global position g going to stream `order-<(g - 1) % streams>` (the shape of the
 * postgres-readall log), data = payload.ts's orderData(g) as jsonb. Written by SQL into Emmett's own
 * tables the way `emt_append_to_stream` writes them (partition `emt:default`, schema version '1', kind
 * 'E', metadata without the message id, the inserting transaction's id), then VACUUM ANALYZEd; the
 * caller checks Emmett reads it back (`verifyEmmettLog`). Returns why not when the table differs.
 */
async function seedEmmettLog(
  url: string,
  schema: string,
  events: number,
  streams: number,
  partition: string,
): Promise<string | undefined> {
  return withClient(url, schema, async (client) => {
    const { rows } = await client.query<{ column_name: string; column_default: string | null; is_nullable: string }>(
      `SELECT column_name, column_default, is_nullable FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'emt_messages'`,
      [schema],
    );
    const unknown = rows.filter(
      (row) =>
        !SEEDED_MESSAGE_COLUMNS.includes(row.column_name) && row.column_default === null && row.is_nullable === 'NO',
    );
    if (unknown.length > 0) return `emt_messages has required columns ${unknown.map((r) => r.column_name).join(', ')}`;
    const missing = SEEDED_MESSAGE_COLUMNS.filter((name) => !rows.some((row) => row.column_name === name));
    if (missing.length > 0) return `emt_messages lacks ${missing.join(', ')}`;
    await client.query('BEGIN');
    try {
      await client.query(
        `INSERT INTO emt_messages (stream_id, stream_position, partition, message_data, message_metadata,
           message_schema_version, message_type, message_kind, message_id, transaction_id, global_position)
         SELECT 'order-' || ((g - 1) % $2), (g - 1) / $2 + 1, $3,
                jsonb_build_object('orderId', 'order-' || g, 'customerId', 'customer-' || (g % 97), 'total', 30 + g % 10,
                  'items', jsonb_build_array(jsonb_build_object('sku', 'sku-1', 'qty', 1, 'price', 10),
                                             jsonb_build_object('sku', 'sku-2', 'qty', 2, 'price', 10))),
                '{}'::jsonb, '1', 'ItemAdded', 'E', gen_random_uuid()::text, pg_current_xact_id(), g
         FROM generate_series(1, $1::bigint) AS g`,
        [events, streams, partition],
      );
      await client.query(
        `INSERT INTO emt_streams (stream_id, stream_position, partition, stream_type, stream_metadata, is_archived)
         SELECT 'order-' || k, count(*), $3, 'order', '{}'::jsonb, FALSE
         FROM generate_series(1, $1::bigint) AS g, LATERAL (SELECT (g - 1) % $2 AS k) AS s
         GROUP BY k`,
        [events, streams, partition],
      );
      await client.query(`SELECT setval('emt_global_message_position', $1::bigint)`, [events]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      return `seeding through SQL failed: ${(error as Error).message}`;
    }
    await client.query('VACUUM ANALYZE emt_messages');
    await client.query('VACUUM ANALYZE emt_streams');
    return undefined;
  });
}

/** Whether Emmett reads the seeded log back: the last stream whole, its last event at global position `events`. */
async function verifyEmmettLog(store: EmmettStore, events: number, streams: number): Promise<string | undefined> {
  const lastStream = `order-${(events - 1) % streams}`;
  const expected = Math.ceil((events - ((events - 1) % streams)) / streams);
  const read = await store.readStream(lastStream);
  const last = read.events[read.events.length - 1];
  if (read.events.length !== expected) return `readStream(${lastStream}) gave ${read.events.length} of ${expected}`;
  if (read.currentStreamVersion !== BigInt(expected)) return `${lastStream} at version ${read.currentStreamVersion}`;
  if (last?.metadata.globalPosition !== BigInt(events) || last.type !== 'ItemAdded') {
    return `${lastStream} ends at global position ${last?.metadata.globalPosition}, not ${events}`;
  }
  const first = (await store.readStream('order-0')).events[0];
  if (first?.metadata.globalPosition !== 1n || (first.data as { total?: number }).total !== 31) {
    return `order-0 starts with ${JSON.stringify(first, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`;
  }
  return undefined;
}

export interface ProjectionCatchUpPlan {
  /** Events in Emmett's log (seeded untimed, per trial). */
  events: number;
  /** Order streams the events cycle over. */
  streams: number;
  /** The consumer's pulling options; Emmett's defaults are 100 per batch and 50 ms between batches. */
  pulling?: PullingOptions;
}

/**
 * Emmett's async projection catch-up, in the shape of Factline's `projection-postgres-catchup`:
 * - setup (untimed): the store migrated in `schema`, the log seeded by SQL (`seedEmmettLog`) and read
 *   back through Emmett (`verifyEmmettLog`; when either fails, the trial fails with the reason);
 * - run (timed): `store.consumer({ pulling })` with one `projector` for a `postgreSQLRawSQLProjection`
 *   that maintains `bench_emmett_summaries (order_id, items, total)`: `init` creates the table, `evolve`
 *   returns one upsert per event (Emmett's projector hands the projection one event at a time, even a
 *   batch projection). Processor defaults: processor id `emt:processor:projector:<name>`, start from
 *   the stored checkpoint (none: the beginning), processor lock acquired on start ('fail' policy),
 *   each pulled batch in one transaction, the checkpoint stored after every event
 *   (`store_processor_checkpoint`, a round trip of its own). The run ends when `consumer.start()`
 *   resolves: `stopAfter` stops the projector on the log's last event, the batch commits, the
 *   processor closes (lock released);
 * - after the clock (still in run): the read model and the checkpoint are checked (every event
 *   counted once, checkpoint at the last position); a mismatch fails the trial.
 * Units: events projected. The caller drops `schema` afterwards.
 */
export function emmettPgProjectionCatchUp(
  url: string,
  schema: string,
  plan: ProjectionCatchUpPlan,
): Promise<Trial | string> {
  const api = loadProjectionApi();
  if (typeof api === 'string') return Promise.resolve(api);
  const { emmett, dumbo } = api;
  return (async (): Promise<Trial | string> => {
    const peer = loadPeer();
    if (typeof peer === 'string') return peer;
    const opened = await openStore(peer, url, schema);
    if (typeof opened === 'string') return opened;
    const table = 'bench_emmett_summaries';
    const name = 'bench_emmett_summaries';
    return {
      setup: async () => {
        const why =
          (await seedEmmettLog(url, schema, plan.events, plan.streams, emmett.defaultTag)) ??
          (await verifyEmmettLog(opened, plan.events, plan.streams));
        if (why) throw new Error(`Emmett's projection log in ${schema}: ${why}`);
      },
      run: async () => {
        const head = BigInt(plan.events);
        const projection = emmett.postgreSQLRawSQLProjection({
          name,
          canHandle: ['ItemAdded'],
          init: () =>
            dumbo.sql(
              `CREATE TABLE IF NOT EXISTS %I (order_id text PRIMARY KEY, items integer NOT NULL, total numeric NOT NULL)`,
              table,
            ),
          evolve: (event) =>
            dumbo.sql(
              `INSERT INTO %I (order_id, items, total) VALUES (%L, 1, %s)
               ON CONFLICT (order_id) DO UPDATE SET items = %I.items + 1, total = %I.total + excluded.total`,
              table,
              event.metadata.streamName,
              (event.data as { total: number }).total,
              table,
              table,
            ),
        });
        const consumer = opened.consumer(plan.pulling ? { pulling: plan.pulling } : undefined) as EmmettConsumer &
          EmmettProjectorConsumer;
        consumer.projector({ projection, stopAfter: (message) => message.metadata.globalPosition >= head });
        const started = process.hrtime.bigint();
        await consumer.start();
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const check = await withClient(url, schema, async (client) => {
          const { rows } = await client.query<{ orders: string; items: string | null }>(
            `SELECT count(*)::text AS orders, sum(items)::text AS items FROM ${table}`,
          );
          const { rows: checkpoints } = await client.query<{ checkpoint: string }>(
            `SELECT last_processed_checkpoint AS checkpoint FROM emt_processors WHERE processor_id = $1`,
            [`emt:processor:projector:${name}`],
          );
          return { ...rows[0], checkpoint: checkpoints.map((row) => row.checkpoint).join() };
        });
        if (
          Number(check.items) !== plan.events ||
          Number(check.orders) !== Math.min(plan.streams, plan.events) ||
          BigInt(check.checkpoint || '0') !== head
        ) {
          throw new Error(`Emmett's projection ended wrong: ${JSON.stringify(check)} for ${plan.events} events`);
        }
        return { units: plan.events, seconds };
      },
      teardown: () => opened.close(),
    };
  })();
}
