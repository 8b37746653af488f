import { createWorkflowTimers, ValidationError, type WorkflowTimers, type WorkflowTimersOptions } from '@factline/core';
import { assertIntegerOption } from '@factline/core/adapter';
import type pg from 'pg';
import { ChannelListener, listenFailureReporter } from '../channel-listener.ts';
import { dedicatedConnectionSettings } from '../connection-settings.ts';
import { advisoryLockKey, createPostgresLeases } from '../lease.ts';
import { checkPostgresWorkflowTimersOptions } from '../options.ts';
import { type PostgresTimerStore, timerChannel } from './postgres-timer-store.ts';

export interface PostgresWorkflowTimersOptions
  extends Omit<WorkflowTimersOptions, 'timers' | 'lease' | 'leaseCheckMs' | 'close'> {
  /** Names the lease. Default: the timer store's schema. */
  schema?: string;
  /** How often the lease is checked, ms. Default 1000. */
  leaseCheckMs?: number;
}

/**
 * The timer poller on PostgreSQL, under a session advisory lock of its own
 * connection: one process per schema fires; the others stand by and take over
 * when its session ends. Options and their defaults are core's
 * (`createWorkflowTimers`). It listens on the timer channel
 * (`factline_timers_<schema>`, another connection of its own): a timer
 * scheduled in any process, due before every other pending one, wakes it
 * rather than waiting for `pollMs`.
 *
 * @example
 * const timers = await getPostgresTimerStore({ pool: store.pool });
 * const poller = await startPostgresWorkflowTimers(timers, { handlers: [checkoutHandler] });
 */
export async function startPostgresWorkflowTimers(
  timers: PostgresTimerStore,
  options: PostgresWorkflowTimersOptions,
): Promise<WorkflowTimers> {
  if (typeof (timers as Partial<PostgresTimerStore> | undefined)?.pool?.query !== 'function') {
    throw new ValidationError({
      path: 'startPostgresWorkflowTimers.timers',
      message: 'must be a PostgreSQL timer store (getPostgresTimerStore)',
    });
  }
  checkPostgresWorkflowTimersOptions(options);
  const leaseCheckMs = assertIntegerOption(options.leaseCheckMs, 'leaseCheckMs', 1) ?? 1000;
  const { schema = timers.schema ?? 'factline', leaseCheckMs: _check, ...rest } = options;
  const connection = timers.pool.options as pg.ClientConfig;
  const leases = createPostgresLeases({
    connection: dedicatedConnectionSettings(connection, 'factline-workflow-timers'),
    keyOf: () => advisoryLockKey(`factline-workflow-timers:${schema}`),
    checkMs: leaseCheckMs,
  });
  // A timer scheduled in any process, due before every other pending one, is
  // announced on the timer channel: the poller wakes rather than sleep to `pollMs`.
  const listener = new ChannelListener({
    connection: dedicatedConnectionSettings(connection, 'factline-workflow-timers-listen'),
    channel: timerChannel(timers.schema ?? schema),
    reconnectInitialMs: 100,
    reconnectMaxMs: 30_000,
    onError: listenFailureReporter(
      'the workflow timer poller',
      timerChannel(timers.schema ?? schema),
      'it looks for due timers every pollMs',
      options,
    ),
  });
  const poller = createWorkflowTimers({
    ...rest,
    timers,
    lease: leases.lease('workflow-timers'),
    leaseCheckMs,
    close: async () => {
      await listener.close();
      await leases.close();
    },
  });
  listener.subscribe(() => poller.wake());
  await poller.start();
  return poller;
}
