import { type Logger, type ParkedEvent, type RecordedEvent, StorageError } from '@factline/core';
import {
  assertIntegerOption,
  checkRebuildVersion,
  type ProjectionBackend,
  type ProjectionVersionRef,
  parseProjectionVersionKey,
  waitForAppendSignal,
} from '@factline/core/adapter';
import pg from 'pg';
import { ChannelListener, listenFailureReporter } from '../channel-listener.ts';
import { checkOutHeld } from '../checkout.ts';
import { dedicatedConnectionSettings } from '../connection-settings.ts';
import { migratePostgres, quoteSchema } from '../migrations.ts';
import { checkPostgresProjectionBackendOptions } from '../options.ts';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import type { PostgresEventStore } from '../store/postgres-event-store.ts';
import { appendChannel } from '../store/schema.ts';
import { ABORTED_BY_CAUGHT_FAILURE, commitOrThrow, isInFailedTransaction } from '../store/store-transaction.ts';
import { withClientHandle } from '../transaction-handle.ts';
import { projectionMigrations } from './projection-tables.ts';

export interface PostgresProjectionBackendOptions {
  /**
   * Settings of the dedicated connections (the LISTEN connection, and the
   * lease connection of `startPostgresProjections`), which do not come from the
   * pool. Default: the store pool's settings.
   */
  connection?: pg.ClientConfig;
  /** `application_name` of the LISTEN connection. Default `'factline-listen'`. */
  listenApplicationName?: string;
  /** First delay ceiling before reconnecting a dropped LISTEN connection, ms (doubling, jittered). Default 100. */
  listenReconnectInitialMs?: number;
  /** Largest delay ceiling between reconnection attempts, ms. Default 5000. */
  listenReconnectMaxMs?: number;
  /**
   * Told when the LISTEN connection cannot connect or drops (a `StorageError`,
   * once per run of failures); runners find new events by their periodic
   * check (`idleCheckMs`) until it is back. Default: nothing is told.
   */
  onListenError?: (error: unknown) => void;
  /** Where that failure is also logged, at `warn`. Default: nowhere. */
  logger?: Logger;
}

export interface PostgresProjectionBackend extends ProjectionBackend<pg.PoolClient> {
  readonly store: PostgresEventStore;
  /** True while the LISTEN connection is up and listening on the store's append channel. */
  readonly listening: boolean;
  /** Ends the LISTEN connection; the next `waitForAppends` opens it again. */
  close(): Promise<void>;
}

/** Positions are bigint columns below 2^53: they come back as numbers. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8) return Number;
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** An error thrown by the caller's code inside a transaction: it passes through unchanged. */
class CallerError {
  constructor(readonly error: unknown) {}
}

const callerWork = async (work: (tx: pg.PoolClient) => void | Promise<void>, client: pg.PoolClient) => {
  try {
    // A handle ended once the work settled: a query it sends later is refused, not run in another transaction.
    await withClientHandle(client, work);
  } catch (error) {
    throw new CallerError(error);
  }
};

/**
 * The projection backend on the store's PostgreSQL schema. Checkpoints live in
 * `<schema>.projections`, parked events in `<schema>.parked` (migration
 * component `projections`). Every batch runs in one transaction on a pool
 * connection: the checkpoint row is locked (`SELECT … FOR UPDATE`) and
 * compared with the runner's, the handler writes its read model through the
 * same client, then the new checkpoint is saved and the transaction commits,
 * so a read model and its checkpoint never disagree. New events are signalled
 * by `NOTIFY` from the append functions, heard on one dedicated LISTEN
 * connection per backend; while that connection is down, the runner's
 * periodic check finds new events instead.
 *
 * @example
 * const backend = getPostgresProjectionBackend(store);
 * const runner = createProjectionRunner(backend, [orderSummaries]);
 * await runner.start();
 * // …
 * await runner.stop();
 * await backend.close();
 */
export function getPostgresProjectionBackend(
  store: PostgresEventStore,
  options: PostgresProjectionBackendOptions = {},
): PostgresProjectionBackend {
  checkPostgresProjectionBackendOptions(options);
  const s = quoteSchema(store.schema);
  const pool = store.pool;
  const statement = (name: string) => statementName(store.schema, `projection-${name}`);
  const listener = new ChannelListener({
    connection: dedicatedConnectionSettings(
      options.connection ?? (store.pool.options as pg.ClientConfig),
      options.listenApplicationName ?? 'factline-listen',
    ),
    channel: appendChannel(store.schema),
    reconnectInitialMs: assertIntegerOption(options.listenReconnectInitialMs, 'listenReconnectInitialMs', 1) ?? 100,
    reconnectMaxMs: assertIntegerOption(options.listenReconnectMaxMs, 'listenReconnectMaxMs', 1) ?? 5000,
    onError: listenFailureReporter(
      'the projection backend',
      appendChannel(store.schema),
      'projection runners find new events by their periodic check (idleCheckMs)',
      { onError: options.onListenError, logger: options.logger },
    ),
  });

  let migrated: Promise<void> | undefined;
  /** Creates the tables on first use (a failed attempt is made again next time). */
  const ready = (): Promise<void> => {
    migrated ??= migratePostgres(pool, store.schema, 'projections', projectionMigrations).catch((error: unknown) => {
      migrated = undefined;
      throw error;
    });
    return migrated;
  };

  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    await ready();
    try {
      return (await pool.query<R>({ name: statement(name), text, values, types })).rows;
    } catch (error) {
      throw toStorageError(error);
    }
  };

  /**
   * Runs `body` in a transaction on a pool connection; it commits when `body`
   * returns true and rolls back when it returns false or throws. Errors of
   * the caller's code (wrapped in `CallerError`) are rethrown unchanged,
   * errors of the driver as `StorageError`s.
   */
  const inTransaction = async (body: (client: pg.PoolClient) => Promise<boolean>): Promise<boolean> => {
    await ready();
    const client = await checkOutHeld(pool, 'a projection batch');
    let broken = false;
    try {
      await client.query('BEGIN');
      const keep = await body(client);
      if (keep) await commitOrThrow(client, () => new CallerError(new StorageError(ABORTED_BY_CAUGHT_FAILURE)));
      else await client.query('ROLLBACK');
      return keep;
    } catch (error) {
      const original = error instanceof CallerError ? error.error : error;
      broken = isConnectionFailure(original);
      if (!broken) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
      }
      throw error instanceof CallerError ? original : toStorageError(original);
    } finally {
      client.release(broken);
    }
  };

  /**
   * Locks the checkpoint row of `name` for this transaction (creating it at
   * 0) and returns its position, with the live version of `projection` read
   * in the same round trip.
   */
  const lockCheckpoint = async (
    client: pg.PoolClient,
    name: string,
    projection: string,
  ): Promise<{ position: number; live: number }> => {
    const select = {
      name: statement('lock-live'),
      text: `SELECT position, (SELECT live_version FROM ${s}.projection_versions WHERE name = $2) AS live
             FROM ${s}.projections WHERE name = $1 FOR UPDATE`,
      values: [name, projection],
      types,
    };
    type Locked = { position: number; live: number | null };
    let row = (await client.query<Locked>(select)).rows[0];
    if (!row) {
      const inserted = await client.query<{ position: number }>({
        name: statement('insert'),
        text: `INSERT INTO ${s}.projections (name, position, updated_at) VALUES ($1, 0, now())
               ON CONFLICT (name) DO NOTHING RETURNING position`,
        values: [name],
        types,
      });
      // Else another transaction inserted it meanwhile (and committed, or the insert would still wait).
      row = inserted.rows[0]
        ? { position: 0, live: (await liveVersion(client, projection)) ?? null }
        : (await client.query<Locked>(select)).rows[0];
    }
    return { position: row?.position ?? 0, live: row?.live ?? 1 };
  };

  const liveVersion = async (client: pg.PoolClient, projection: string, lock = false): Promise<number | undefined> =>
    (
      await client.query<{ live_version: number }>({
        name: statement(lock ? 'live-lock' : 'live'),
        text: `SELECT live_version FROM ${s}.projection_versions WHERE name = $1${lock ? ' FOR UPDATE' : ''}`,
        values: [projection],
        types,
      })
    ).rows[0]?.live_version;

  /**
   * Runs `work` and saves `next` in one transaction if the checkpoint is
   * still `expected` and no version newer than `version` is live.
   */
  const guarded = (
    name: string,
    expected: number,
    next: number,
    work: ((client: pg.PoolClient) => Promise<void>) | undefined,
    version: ProjectionVersionRef | undefined,
  ): Promise<boolean> =>
    inTransaction(async (client) => {
      const locked = await lockCheckpoint(client, name, version?.projection ?? name);
      if (locked.position !== expected || (version && locked.live > version.version)) return false;
      if (work) await work(client);
      try {
        await client.query({
          name: statement('save'),
          text: `UPDATE ${s}.projections SET position = $2, updated_at = now() WHERE name = $1`,
          values: [name, next],
        });
      } catch (error) {
        // The work caught a failed statement of its own and returned: say so, not "transaction is aborted".
        if (work && isInFailedTransaction(error)) throw new StorageError(ABORTED_BY_CAUGHT_FAILURE, { cause: error });
        throw error;
      }
      return true;
    });

  return {
    store,
    get listening() {
      return listener.listening;
    },

    async loadCheckpoint(name) {
      const rows = await query<{ position: number }>(
        'checkpoint',
        `SELECT position FROM ${s}.projections WHERE name = $1`,
        [name],
      );
      return rows[0]?.position ?? 0;
    },

    commit: ({ name, expected, checkpoint: next, work, version, resetParked }) =>
      guarded(
        name,
        expected,
        next,
        work || resetParked
          ? async (client) => {
              if (resetParked) {
                await client.query({
                  name: statement('unpark-all'),
                  text: `DELETE FROM ${s}.parked WHERE projection = $1`,
                  values: [name],
                });
              }
              if (work) await callerWork(work, client);
            }
          : undefined,
        version,
      ),

    park: (name, expected, event: RecordedEvent, error: string, version) =>
      guarded(
        name,
        expected,
        event.position,
        async (client) => {
          // A rebuild may park the same event again: the newer error replaces the older.
          await client.query({
            name: statement('park'),
            text: `INSERT INTO ${s}.parked (projection, position, event_id, stream_id, type, event, error, parked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now())
                 ON CONFLICT (projection, position) DO UPDATE SET event_id = excluded.event_id,
                   stream_id = excluded.stream_id, type = excluded.type, event = excluded.event,
                   error = excluded.error, parked_at = excluded.parked_at`,
            values: [name, event.position, event.id, event.streamId, event.type, JSON.stringify(event), error],
          });
        },
        version,
      ),

    async loadControl(projection) {
      const rows = await query<{
        paused: boolean;
        rebuild_requested_at: string | null;
        rebuild_version: number | null;
      }>(
        'control',
        `SELECT paused, rebuild_requested_at, rebuild_version FROM ${s}.projection_controls WHERE name = $1`,
        [projection],
      );
      const requested = rows[0]?.rebuild_requested_at;
      return {
        paused: rows[0]?.paused === true,
        rebuildRequestedAt: requested == null ? null : Number(requested),
        rebuildVersion: rows[0]?.rebuild_version ?? null,
      };
    },

    async requestRebuild(projection, version) {
      const checked = checkRebuildVersion(version);
      const at = Date.now();
      // Of the version given, else of the one live now (read in the same statement).
      await query(
        'request-rebuild',
        `INSERT INTO ${s}.projection_controls (name, paused, rebuild_requested_at, rebuild_version, changed_at)
         VALUES ($1, false, $2, COALESCE($3::integer,
           (SELECT live_version FROM ${s}.projection_versions WHERE name = $1), 1), now())
         ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at,
           rebuild_version = excluded.rebuild_version, changed_at = now()`,
        [projection, at, checked ?? null],
      );
      return at;
    },

    async clearRebuildRequest(projection, requestedAt) {
      const rows = await query<{ name: string }>(
        'clear-rebuild',
        `UPDATE ${s}.projection_controls SET rebuild_requested_at = NULL, changed_at = now()
         WHERE name = $1 AND rebuild_requested_at = $2 RETURNING name`,
        [projection, requestedAt],
      );
      return rows.length === 1;
    },

    async setPaused(projection, paused) {
      await query(
        'set-paused',
        `INSERT INTO ${s}.projection_controls (name, paused, changed_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at`,
        [projection, paused],
      );
    },

    async loadLiveVersion(projection) {
      const rows = await query<{ live_version: number }>(
        'live',
        `SELECT live_version FROM ${s}.projection_versions WHERE name = $1`,
        [projection],
      );
      return rows[0]?.live_version ?? 1;
    },

    async recordLiveVersion(projection, version) {
      let before = 1;
      await inTransaction(async (client) => {
        const locked = await liveVersion(client, projection, true);
        if (locked === undefined) {
          const inserted = await client.query({
            name: statement('live-insert'),
            text: `INSERT INTO ${s}.projection_versions (name, live_version, switched_at) VALUES ($1, $2, now())
                   ON CONFLICT (name) DO NOTHING RETURNING name`,
            values: [projection, version],
          });
          if (inserted.rows.length > 0) return true;
          // Another transaction inserted it meanwhile: lock it and compare.
          before = (await liveVersion(client, projection, true)) ?? 1;
        } else {
          before = locked;
        }
        if (version > before) {
          await client.query({
            name: statement('live-save'),
            text: `UPDATE ${s}.projection_versions SET live_version = $2, switched_at = now() WHERE name = $1`,
            values: [projection, version],
          });
        }
        return true;
      });
      return before;
    },

    async listParked(name?: string) {
      const rows = await query<{ projection: string; event: string; error: string; parked_at: Date }>(
        'parked',
        `SELECT projection, event::text AS event, error, parked_at FROM ${s}.parked
         WHERE $1::text IS NULL OR projection = $1 ORDER BY projection, position`,
        [name ?? null],
      );
      return rows.map((row): ParkedEvent => {
        const event = JSON.parse(row.event) as RecordedEvent & { recordedAt: string };
        const { name: projection, version } = parseProjectionVersionKey(row.projection);
        return {
          projection,
          version,
          event: { ...event, recordedAt: new Date(event.recordedAt) },
          error: row.error,
          parkedAt: row.parked_at,
        };
      });
    },

    async transaction(work) {
      await inTransaction(async (client) => {
        await callerWork(work, client);
        return true;
      });
    },

    waitForAppends: (position, timeoutMs, signal) =>
      waitForAppendSignal({
        position,
        timeoutMs,
        signal,
        subscribe: (wake) => [
          // The payload is the new head; `undefined`: the listener (re)connected and may have missed appends.
          listener.subscribe((payload) => {
            const head = Number(payload);
            if (payload === undefined || !Number.isSafeInteger(head) || head > position) wake();
          }),
          // Appends from this process wake the runner directly, without the NOTIFY round trip.
          store.onAppend((appended) => {
            if (appended > position) wake();
          }),
        ],
        headPosition: () => store.headPosition(),
      }),

    close: () => listener.close(),
  };
}
