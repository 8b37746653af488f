import {
  type AppendResult,
  type EventStore,
  type Projection,
  type SchemaRegistry,
  StoreClosedError,
  type StoreLimits,
  ValidationError,
} from '@factline/core';
import {
  assertIntegerOption,
  checkInlineProjections,
  defaultStoreLimits,
  instrumentEventStore,
  prepareAppend,
  withSchemas,
} from '@factline/core/adapter';
import pg from 'pg';
import { migratePostgres } from '../migrations.ts';
import { checkPostgresEventStoreOptions } from '../options.ts';
import { boundConnectionWaits, DEFAULT_CONNECTION_WAIT_MS, ledgerOf, poolMax } from '../pool-ledger.ts';
import { AppendBatcher, type AppendBatchStats } from './append-batcher.ts';
import { createSettle } from './append-outcome.ts';
import { createAppendSignal, type NotifyStats } from './append-signal.ts';
import { createInlineWrite, initInlineProjections } from './inline-projections.ts';
import { createReadPaths } from './read-paths.ts';
import { appendChannel, eventStoreMigrations } from './schema.ts';
import { createStoreQuery, storeStatements } from './statements.ts';
import { createStreamRemoval } from './stream-removal.ts';
import { createWritePaths } from './write-paths.ts';
import { WriterConnections } from './writer-connections.ts';

export interface PostgresEventStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /**
   * A node-postgres pool to use instead of opening one. The store never ends
   * it; its owner must. Its type parsers are not changed (the store asks for
   * the column types it needs per query).
   */
  pool?: pg.Pool;
  /** The schema holding the store's tables; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool the store opens. Default 10. */
  poolSize?: number;
  limits?: Partial<StoreLimits>;
  /** Clock for `recordedAt`; defaults to `Date.now`. */
  now?: () => number;
  /** Most appends written in one batch (one statement, one commit). Default 256; 48 with inline projections (a savepoint each). */
  maxBatch?: number;
  /**
   * Inline projections: run inside each append's transaction (the handler gets
   * the transaction's `pg` client), so their read models are up to date the
   * moment `append` resolves. A handler that throws fails that append and
   * nothing of it is written. Appends then take a few more round trips each.
   */
  inlineProjections?: readonly Projection<pg.PoolClient>[];
  /**
   * Announce appends with `NOTIFY` on the store's channel (payload: the head
   * position), so projection runners in other processes wake at once (default
   * true). At most one notification per `notifyIntervalMs`: the first append
   * after the interval carries it in its own transaction (delivered at its
   * commit, no extra round trip); when appends stop, the last ones are
   * announced from another connection. See docs/postgres.md, "Signalling
   * appends". Runners in this process are woken directly, and a lost
   * notification only delays a runner to its periodic check.
   */
  notifyAppends?: boolean;
  /**
   * Shortest time between two such notifications, in ms (later appends fold
   * into the next one): a whole number from 0 to 2147483647. Default 10.
   * With `notifyAppends: false` there is no notification to space out: a
   * `ValidationError`.
   */
  notifyIntervalMs?: number;
  /**
   * The application's event types: appends are validated and stamped with
   * their current schema version, every read upcasts to it (core's `withSchemas`).
   */
  schemas?: SchemaRegistry;
}

export interface PostgresStoreStats extends AppendBatchStats, NotifyStats {}

export interface PostgresEventStore extends EventStore {
  /** The pool the store uses: read models and other ports may share it. */
  readonly pool: pg.Pool;
  /** The schema holding the store's tables. */
  readonly schema: string;
  /** Group-commit and notification counters since open. */
  stats(): PostgresStoreStats;
  /** Drops the store's schema with everything in it (tests and benchmarks), then closes the store. */
  dropSchema(): Promise<void>;
  /**
   * Calls `listener` with the new head position after appends from this store
   * commit. Returns the unsubscribe function.
   */
  onAppend(listener: (position: number) => void): () => void;
}

/**
 * Batches written at once (see AppendBatcher). One: measured against two (the
 * next batch waiting on the append lock while one commits), one slot gave
 * batches twice as large, half the WAL flushes and more appends per second.
 */
const WRITE_SLOTS = 1;

/**
 * The event store on PostgreSQL: several processes may share it. Appends from
 * one process are group-committed; every append takes one advisory lock, so
 * global positions are handed out in commit order and a `readAll` reader
 * resuming from any position never skips an event that commits late.
 *
 * The parts, one file each: `statements.ts` (the SQL), `row-codec.ts` (rows
 * and parameters), `write-paths.ts` (the append paths, with
 * `append-outcome.ts` and `inline-projections.ts`), `append-signal.ts`
 * (waking runners here and elsewhere), `read-paths.ts`, `stream-removal.ts`.
 *
 * @example
 * const store = await getPostgresEventStore({ connectionString: 'postgres://app@127.0.0.1/app' });
 * await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }], { expectedVersion: 'no-stream' });
 * for await (const event of store.readAll({ after: 0 })) console.log(event.position, event.type);
 * await store.close();
 */
export async function getPostgresEventStore(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
  checkPostgresEventStoreOptions(options);
  if (options?.pool === undefined && typeof options?.connectionString !== 'string') {
    throw new ValidationError({ path: 'connectionString', message: 'give a connection string or a pg Pool' });
  }
  const inline = checkInlineProjections(options.inlineProjections, 'getPostgresEventStore.inlineProjections');
  const schemaName = options.schema ?? 'factline';
  const statements = storeStatements(schemaName);
  const poolSize = assertIntegerOption(options.poolSize, 'poolSize', 1) ?? 10;
  // With inline projections every append of a batch is a savepoint (a subtransaction): past 64
  // in one transaction PostgreSQL stops caching them per backend, which slows every other
  // session's snapshots, so such batches stop at 48 appends unless told otherwise.
  const maxBatch = assertIntegerOption(options.maxBatch, 'maxBatch', 1) ?? (inline.length > 0 ? 48 : 256);
  const notifyIntervalMs = assertIntegerOption(options.notifyIntervalMs, 'notifyIntervalMs', 0) ?? 10;
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const ownPool = options.pool === undefined;
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.connectionString,
      max: poolSize,
      application_name: 'factline',
      // Nothing waits for a connection forever: past this, a TimeoutError.
      connectionTimeoutMillis: DEFAULT_CONNECTION_WAIT_MS,
    });
  // An idle connection the server closed (restart, pg_terminate_backend) is dropped
  // from the pool and replaced on next use; without a listener it would crash the process.
  if (ownPool) pool.on('error', () => undefined);
  boundConnectionWaits(pool);
  try {
    await migratePostgres(pool, schemaName, 'event-store', eventStoreMigrations);
    await initInlineProjections(pool, inline);
  } catch (error) {
    if (ownPool) await pool.end().catch(() => undefined);
    throw error;
  }

  let closed = false;
  const open = () => {
    if (closed) throw new StoreClosedError();
  };
  const query = createStoreQuery(pool, schemaName);
  // The pool's ledger leaves at least one connection to reads (a pool of 1 holds none for writes).
  const writers = new WriterConnections(pool, Math.min(WRITE_SLOTS, poolMax(pool) - 1), ledgerOf(pool));
  const signal = createAppendSignal({
    pool,
    channel: appendChannel(schemaName),
    notifyHead: statements.notifyHead,
    notifyAppends: options.notifyAppends ?? true,
    notifyIntervalMs,
  });
  const settle = createSettle(query, statements);
  const writeInline =
    inline.length > 0 ? createInlineWrite({ pool, projections: inline, statements, signal, settle, now }) : undefined;
  const { writeAndSignal } = createWritePaths({ writers, statements, signal, settle, now, writeInline });
  const batcher = new AppendBatcher<AppendResult>(writeAndSignal, maxBatch, WRITE_SLOTS);

  const store: PostgresEventStore = {
    pool,
    schema: schemaName,

    // Not async: the batcher's promise is handed back as it is (no extra hops);
    // invalid input still rejects rather than throws.
    append(streamId, events, appendOptions) {
      try {
        open();
        return batcher.enqueue(prepareAppend(streamId, events, appendOptions, limits));
      } catch (error) {
        return Promise.reject(error);
      }
    },

    ...createReadPaths({ pool, schemaName, statements, query, limits, open }),
    ...createStreamRemoval({ pool, statements, limits, open }),

    stats: () => ({ ...batcher.stats, ...signal.stats }),

    onAppend: (listener) => signal.onAppend(listener),

    async close() {
      if (closed) return;
      closed = true;
      signal.stop();
      await batcher.drained();
      await signal.close();
      writers.releaseAll();
      if (ownPool) await pool.end();
    },

    async dropSchema() {
      await batcher.drained();
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${statements.s} CASCADE`);
      } finally {
        await store.close();
      }
    },
  };
  return instrumentEventStore(options.schemas ? withSchemas(store, options.schemas) : store, 'postgresql');
}
