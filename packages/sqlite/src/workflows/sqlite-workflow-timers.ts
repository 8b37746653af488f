import { createWorkflowTimers, ValidationError, type WorkflowTimers, type WorkflowTimersOptions } from '@factline/core';
import { createSqliteLeases, leaseTimings } from '../lease.ts';
import { checkSqliteWorkflowTimersOptions } from '../options.ts';
import type { SqliteEventStore } from '../store/sqlite-event-store.ts';
import { getSqliteTimerStore } from './sqlite-timer-store.ts';

export interface SqliteWorkflowTimersOptions
  extends Omit<WorkflowTimersOptions, 'timers' | 'lease' | 'leaseCheckMs' | 'close'> {
  /** How long the poller's lease holds without renewal, ms. Default as the other SQLite leases. */
  leaseTtlMs?: number;
  /** How often it is renewed or tried. Default a fifth of the TTL. */
  leaseCheckMs?: number;
}

/**
 * The timer poller on an SQLite file, under the lease `workflow-timers` in
 * `factline_leases`: one process fires, the others stand by and take over
 * once its lease expires. The store must run `sqliteTimerProjection()`.
 * Options and their defaults are core's (`createWorkflowTimers`). Nothing
 * signals between processes on SQLite: a timer another process schedules,
 * due sooner than the poller's next look, fires at that look (`pollMs`,
 * default 100 ms); in this process, `wake()` the poller.
 *
 * @example
 * const store = getSqliteEventStore({ path: 'app.db', inlineProjections: [sqliteTimerProjection()] });
 * const timers = await startSqliteWorkflowTimers(store, { handlers: [checkoutHandler] });
 * // on shutdown
 * await timers.stop();
 */
export async function startSqliteWorkflowTimers(
  store: SqliteEventStore,
  options: SqliteWorkflowTimersOptions,
): Promise<WorkflowTimers> {
  if (!store?.database) throw new ValidationError({ path: 'store', message: 'must be an SQLite event store' });
  checkSqliteWorkflowTimersOptions(options);
  const { ttlMs, checkMs } = leaseTimings(options);
  const { leaseTtlMs: _ttl, leaseCheckMs: _check, ...rest } = options;
  const leases = createSqliteLeases({ database: store.database, ttlMs });
  const timers = createWorkflowTimers({
    ...rest,
    timers: getSqliteTimerStore({ database: store.database }),
    lease: leases.lease('workflow-timers'),
    leaseCheckMs: checkMs,
    close: () => leases.close(),
  });
  await timers.start();
  return timers;
}
