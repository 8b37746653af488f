import { type PendingTimer, type Projection, StoreClosedError, type TimerStore, ValidationError } from '@factline/core';
import { type TimerChange, timerChanges, timerEventTypes } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { applyMigrations, type Migration, migrate } from '../migrations.ts';
import { checkSqliteTimerStoreOptions } from '../options.ts';
import { toStorageError } from '../store/sqlite-errors.ts';

export const timerMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'pending workflow timers, one per instance and token',
    up: `
      CREATE TABLE factline_workflow_timers (
        timer_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        token TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        message TEXT NOT NULL,
        metadata TEXT NOT NULL,
        UNIQUE (stream_id, token)
      );
      CREATE INDEX factline_workflow_timers_due ON factline_workflow_timers (due_at, timer_id);
    `,
  },
];

const component = 'workflow-timers';

/** Applies the timer changes of an append's events through the append's transaction handle. */
function applyChanges(tx: Database, changes: readonly TimerChange[]): void {
  for (const change of changes) {
    switch (change.kind) {
      case 'schedule': {
        const { timer } = change;
        tx.prepare(
          `INSERT INTO factline_workflow_timers (timer_id, stream_id, workflow, token, due_at, message, metadata)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (stream_id, token) DO UPDATE SET
             timer_id = excluded.timer_id, workflow = excluded.workflow, due_at = excluded.due_at,
             message = excluded.message, metadata = excluded.metadata`,
        ).run(
          timer.timerId,
          timer.streamId,
          timer.workflow,
          timer.token,
          timer.dueAt,
          JSON.stringify(timer.message),
          JSON.stringify(timer.metadata),
        );
        break;
      }
      case 'remove':
        tx.prepare('DELETE FROM factline_workflow_timers WHERE timer_id = ?').run(change.timerId);
        break;
      case 'cancel':
        tx.prepare('DELETE FROM factline_workflow_timers WHERE stream_id = ? AND token = ?').run(
          change.streamId,
          change.token,
        );
        break;
      case 'end':
        tx.prepare('DELETE FROM factline_workflow_timers WHERE stream_id = ?').run(change.streamId);
        break;
    }
  }
}

/**
 * The inline projection that keeps the timer table (`factline_workflow_timers`,
 * migration component `workflow-timers`) from the instances' records, in each
 * append's transaction: a timer is pending exactly when its decision committed.
 * Give it to the store, then read the table with `getSqliteTimerStore`.
 *
 * @example
 * const store = getSqliteEventStore({ path: 'app.db', inlineProjections: [sqliteTimerProjection()] });
 * const timers = getSqliteTimerStore({ database: store.database });
 */
export function sqliteTimerProjection(): Projection<Database> {
  return {
    name: 'factline_workflow_timers',
    handles: timerEventTypes,
    init: (tx) => applyMigrations(tx, component, timerMigrations),
    handle: (events, tx) => applyChanges(tx, timerChanges(events)),
  };
}

export interface SqliteTimerStoreOptions {
  /** The event store's connection (`store.database`); the store runs `sqliteTimerProjection()`. */
  database: Database;
}

interface TimerRow {
  timerId: string;
  streamId: string;
  workflow: string;
  token: string;
  dueAt: number;
  message: string;
  metadata: string;
}

const fromRow = (row: TimerRow): PendingTimer => ({
  timerId: row.timerId,
  streamId: row.streamId,
  workflow: row.workflow,
  token: row.token,
  dueAt: row.dueAt,
  message: JSON.parse(row.message),
  metadata: JSON.parse(row.metadata),
});

/**
 * The pending workflow timers of an SQLite file, read by the timer poller
 * (`createWorkflowTimers`). Writes come only through the store's appends
 * (`sqliteTimerProjection`), besides `remove` of a timer whose instance is gone.
 *
 * @example
 * const poller = createWorkflowTimers({ timers: getSqliteTimerStore({ database: store.database }), handlers });
 */
export function getSqliteTimerStore(options: SqliteTimerStoreOptions): TimerStore {
  checkSqliteTimerStoreOptions(options);
  const db = options.database;
  if (!db.open) throw new ValidationError({ path: 'database', message: 'is closed' });
  try {
    migrate(db, component, timerMigrations);
  } catch (error) {
    throw toStorageError(error);
  }
  const columns = `timer_id AS timerId, stream_id AS streamId, workflow, token, due_at AS dueAt, message, metadata`;
  const due = db.prepare<[number, number]>(
    `SELECT ${columns} FROM factline_workflow_timers WHERE due_at <= ? ORDER BY due_at, timer_id LIMIT ?`,
  );
  const next = db.prepare('SELECT MIN(due_at) AS dueAt FROM factline_workflow_timers').pluck();
  const count = db.prepare('SELECT COUNT(*) FROM factline_workflow_timers').pluck();
  const remove = db.prepare<[string]>('DELETE FROM factline_workflow_timers WHERE timer_id = ?');

  const guard = <T>(work: () => T): T => {
    if (!db.open) throw new StoreClosedError('timer store');
    try {
      return work();
    } catch (error) {
      throw toStorageError(error);
    }
  };

  return {
    async due(now, limit) {
      return guard(() => (due.all(now, limit) as TimerRow[]).map(fromRow));
    },
    async nextDueAt() {
      return guard(() => (next.get() as number | null) ?? undefined);
    },
    async pendingCount() {
      return guard(() => count.get() as number);
    },
    async remove(timerId) {
      guard(() => remove.run(timerId));
    },
  };
}
