import { createHash } from 'node:crypto';
import { type PendingTimer, type Projection, StoreClosedError, type TimerStore } from '@factline/core';
import {
  assertIntegerOption,
  checkOptions,
  type TimerChange,
  timerChanges,
  timerEventTypes,
} from '@factline/core/adapter';
import type pg from 'pg';
import { applyMigrations, migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { checkPostgresTimerStoreOptions } from '../options.ts';
import { toStorageError } from '../pg-errors.ts';

export const timerMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'pending workflow timers, one per instance and token',
    up: (s) => `
      CREATE TABLE ${s}.workflow_timers (
        timer_id text PRIMARY KEY,
        stream_id text NOT NULL,
        workflow text NOT NULL,
        token text NOT NULL,
        due_at bigint NOT NULL,
        message json NOT NULL,
        metadata json NOT NULL,
        UNIQUE (stream_id, token)
      );
      CREATE INDEX workflow_timers_due ON ${s}.workflow_timers (due_at, timer_id);
    `,
  },
];

const component = 'workflow-timers';

/**
 * The NOTIFY channel on which the timer projection announces a timer due
 * before every other pending one of `schema` (payload: its due time, ms).
 */
export function timerChannel(schema: string): string {
  const channel = `factline_timers_${schema}`;
  if (channel.length <= 63) return channel;
  return `factline_timers_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

/**
 * Applies the timer changes of an append's events through the append's
 * transaction: runs of removals (fired timers) and of ends go as one
 * statement each, so a batch of firings costs one round trip, not one each.
 */
async function applyChanges(
  tx: pg.PoolClient,
  s: string,
  channel: string,
  changes: readonly TimerChange[],
): Promise<void> {
  for (let i = 0; i < changes.length; ) {
    const change = changes[i] as TimerChange;
    if (change.kind === 'remove' || change.kind === 'end') {
      const ids: string[] = [];
      for (; i < changes.length && (changes[i] as TimerChange).kind === change.kind; i++) {
        const next = changes[i] as Extract<TimerChange, { kind: 'remove' | 'end' }>;
        ids.push(next.kind === 'remove' ? next.timerId : next.streamId);
      }
      const column = change.kind === 'remove' ? 'timer_id' : 'stream_id';
      await tx.query(`DELETE FROM ${s}.workflow_timers WHERE ${column} = ANY($1::text[])`, [ids]);
      continue;
    }
    i++;
    switch (change.kind) {
      case 'schedule': {
        const { timer } = change;
        // A timer due before every other pending one not due yet is announced (at commit) on the
        // timer channel: a poller in another process, sleeping until the earliest it knew of, wakes.
        // Timers due already do not hold the announcement back: one failing and waiting for its
        // retry would silence it for every timer scheduled after it.
        await tx.query(
          `WITH put AS (
             INSERT INTO ${s}.workflow_timers (timer_id, stream_id, workflow, token, due_at, message, metadata)
             VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)
             ON CONFLICT (stream_id, token) DO UPDATE SET
               timer_id = excluded.timer_id, workflow = excluded.workflow, due_at = excluded.due_at,
               message = excluded.message, metadata = excluded.metadata
             RETURNING due_at)
           SELECT pg_notify($8, put.due_at::text) FROM put
            WHERE NOT EXISTS (SELECT 1 FROM ${s}.workflow_timers t WHERE t.due_at < put.due_at AND t.due_at > $9)`,
          [
            timer.timerId,
            timer.streamId,
            timer.workflow,
            timer.token,
            timer.dueAt,
            JSON.stringify(timer.message),
            JSON.stringify(timer.metadata),
            channel,
            Date.now(),
          ],
        );
        break;
      }
      case 'cancel':
        await tx.query(`DELETE FROM ${s}.workflow_timers WHERE stream_id = $1 AND token = $2`, [
          change.streamId,
          change.token,
        ]);
        break;
    }
  }
}

/**
 * The inline projection that keeps `<schema>.workflow_timers` (migration
 * component `workflow-timers`) from the instances' records, in each append's
 * transaction: a timer is pending exactly when its decision committed. Give it
 * to the store, then read the table with `getPostgresTimerStore`.
 *
 * @example
 * const store = await getPostgresEventStore({ connectionString, inlineProjections: [postgresTimerProjection()] });
 * const timers = await getPostgresTimerStore({ pool: store.pool });
 */
export function postgresTimerProjection(options: { schema?: string } = {}): Projection<pg.PoolClient> {
  checkOptions(options, { schema: 'string' }, 'postgresTimerProjection');
  const schema = options.schema ?? 'factline';
  const s = quoteSchema(schema);
  const channel = timerChannel(schema);
  return {
    name: 'factline_workflow_timers',
    handles: timerEventTypes,
    init: (tx) => applyMigrations(tx, schema, component, timerMigrations),
    handle: (events, tx) => applyChanges(tx, s, channel, timerChanges(events)),
  };
}

export interface PostgresTimerStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** A pool to use (e.g. an event store's `.pool`); never ended here. */
  pool?: pg.Pool;
  /** The schema holding the table. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool opened from `connectionString`. Default 2. */
  poolSize?: number;
}

export interface PostgresTimerStore extends TimerStore {
  readonly pool: pg.Pool;
  /** The schema holding the table. */
  readonly schema: string;
  /** Ends the pool if the store opened it; later calls throw `StoreClosedError`. */
  close(): Promise<void>;
}

interface TimerRow {
  timerId: string;
  streamId: string;
  workflow: string;
  token: string;
  dueAt: string;
  message: PendingTimer['message'];
  metadata: Record<string, unknown>;
}

/**
 * The pending workflow timers of a PostgreSQL schema, read by the timer
 * poller (`createWorkflowTimers`). Writes come only through the store's
 * appends (`postgresTimerProjection`), besides `remove` of a timer whose
 * instance is gone.
 *
 * @example
 * const timers = await getPostgresTimerStore({ pool: store.pool });
 * const poller = createWorkflowTimers({ timers, handlers: [checkoutHandler] });
 */
export async function getPostgresTimerStore(options: PostgresTimerStoreOptions): Promise<PostgresTimerStore> {
  checkPostgresTimerStoreOptions(options);
  const schema = options.schema ?? 'factline';
  const s = quoteSchema(schema);
  const poolSize = assertIntegerOption(options.poolSize, 'poolSize', 1) ?? 2;
  const { pool, own } = await migratedPool({
    pool: options.pool,
    connectionString: options.connectionString,
    poolSize,
    schema,
    component,
    migrations: timerMigrations,
  });
  let closed = false;
  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) => {
    if (closed) throw new StoreClosedError('timer store');
    try {
      return await pool.query<R>(text, values);
    } catch (error) {
      throw toStorageError(error);
    }
  };
  return {
    pool,
    schema,
    async due(now, limit) {
      const { rows } = await query<TimerRow>(
        `SELECT timer_id AS "timerId", stream_id AS "streamId", workflow, token, due_at AS "dueAt", message, metadata
           FROM ${s}.workflow_timers WHERE due_at <= $1 ORDER BY due_at, timer_id LIMIT $2`,
        [now, limit],
      );
      return rows.map((row) => ({ ...row, dueAt: Number(row.dueAt) }));
    },
    async nextDueAt() {
      const { rows } = await query<{ dueAt: string | null }>(
        `SELECT MIN(due_at) AS "dueAt" FROM ${s}.workflow_timers`,
        [],
      );
      const dueAt = rows[0]?.dueAt;
      return dueAt === null || dueAt === undefined ? undefined : Number(dueAt);
    },
    async pendingCount() {
      const { rows } = await query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM ${s}.workflow_timers`, []);
      return rows[0]?.n ?? 0;
    },
    async remove(timerId) {
      await query(`DELETE FROM ${s}.workflow_timers WHERE timer_id = $1`, [timerId]);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (own) await pool.end().catch(() => undefined);
    },
  };
}
