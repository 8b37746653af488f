import { ValidationError, type ValidationIssue } from '@factline/core';
import {
  type CheckOptionsSettings,
  checkOptions,
  checkStoreLimits,
  checkWorkflowHandlers,
  loggerKind,
  MAX_TIMER_MS,
  type OptionKind,
  type OptionSpecOf,
  projectionRunnerSpec,
  schemasOption,
  workflowTimersSpec,
} from '@factline/core/adapter';
import type { PostgresConsumerStoreOptions, PostgresInboxOptions } from './messaging/postgres-consumer-stores.ts';
import type { PostgresTransportOptions } from './messaging/postgres-transport.ts';
import type { PostgresOutboxOptions, PostgresOutboxRelayOptions } from './outbox/postgres-outbox.ts';
import type {
  PostgresProjectionBackendOptions,
  PostgresProjectionsOptions,
} from './projections/postgres-projections.ts';
import type { PostgresSnapshotStoreOptions } from './snapshots/postgres-snapshot-store.ts';
import type { PostgresEventStoreOptions } from './store/postgres-event-store.ts';
import type { PostgresTracerOptions } from './tracing/postgres-tracer.ts';
import type { PostgresTimerStoreOptions } from './workflows/postgres-timer-store.ts';
import type { PostgresWorkflowTimersOptions } from './workflows/postgres-workflow-timers.ts';

// The option specs of the PostgreSQL package's factories, beside each other so a reader sees every name once.

const pool: OptionKind = (value) => {
  const candidate = value as { connect?: unknown; query?: unknown } | null;
  return typeof candidate?.connect === 'function' && typeof candidate.query === 'function'
    ? undefined
    : 'must be a pg Pool';
};

/** Where a component finds its database: its own pool from a URL, or the caller's pool. */
const databaseSpec = {
  connectionString: 'non-empty-string',
  pool,
  schema: 'non-empty-string',
  poolSize: 'positive-integer',
} as const;

type DatabaseOptions = { connectionString?: string; pool?: unknown; poolSize?: number };

/**
 * `checkOptions` for a factory that takes `databaseSpec`, refusing as well
 * what a given `pool` would leave unused: `connectionString` (the pool would
 * be used, the string ignored) and `poolSize` (the size of a pool the
 * factory opens). `more`: the factory's own conflicts, as issues.
 */
function checkDatabaseOptions<T extends DatabaseOptions>(
  options: T,
  spec: OptionSpecOf<T>,
  where: string,
  settings: CheckOptionsSettings = { optional: false },
  more: (options: T) => ValidationIssue[] = () => [],
): void {
  checkOptions(options, spec, where, settings);
  if (options === undefined) return;
  const issues: ValidationIssue[] = [];
  if (options.pool !== undefined && options.connectionString !== undefined) {
    issues.push({
      path: `${where}.connectionString`,
      message: 'is given with `pool`: give one of them (the pool would be used and this string ignored)',
    });
  }
  if (options.pool !== undefined && options.poolSize !== undefined) {
    issues.push({
      path: `${where}.poolSize`,
      message: 'is for a pool the factory opens: with `pool` given it would do nothing (size your own pool)',
    });
  }
  issues.push(...more(options));
  if (issues.length > 0) throw new ValidationError(issues);
}

const eventStoreSpec: OptionSpecOf<PostgresEventStoreOptions> = {
  ...databaseSpec,
  limits: 'object',
  now: 'function',
  maxBatch: 'positive-integer',
  inlineProjections: 'array',
  notifyAppends: 'boolean',
  // The wait of a separate notification is a timer: Node fires one above MAX_TIMER_MS after 1 ms.
  notifyIntervalMs: (value) =>
    Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_TIMER_MS
      ? undefined
      : `must be a whole number from 0 to ${MAX_TIMER_MS} (a timer's limit)`,
  schemas: schemasOption,
};

/** Checks `getPostgresEventStore`'s options. */
export function checkPostgresEventStoreOptions(options: PostgresEventStoreOptions): void {
  checkDatabaseOptions(options, eventStoreSpec, 'getPostgresEventStore', { optional: false }, (given) =>
    given.notifyAppends === false && given.notifyIntervalMs !== undefined
      ? [
          {
            path: 'getPostgresEventStore.notifyIntervalMs',
            message:
              'spaces out the notifications of appends: with `notifyAppends: false` there are none (drop one of them)',
          },
        ]
      : [],
  );
  checkStoreLimits(options.limits, 'getPostgresEventStore.limits');
}

const transportSpec: OptionSpecOf<PostgresTransportOptions> = {
  ...databaseSpec,
  listen: 'boolean',
  listenConnection: 'object',
  pollIntervalMs: 'timer-ms',
  onError: 'function',
};

/** Checks `getPostgresTransport`'s options. */
export function checkPostgresTransportOptions(options: PostgresTransportOptions): void {
  checkDatabaseOptions(options, transportSpec, 'getPostgresTransport', { optional: false }, (given) =>
    given.listen === false && given.listenConnection !== undefined
      ? [
          {
            path: 'getPostgresTransport.listenConnection',
            message: "is the LISTEN connection's: with `listen: false` there is none (drop one of them)",
          },
        ]
      : [],
  );
}

const consumerStoreSpec: OptionSpecOf<PostgresConsumerStoreOptions> = databaseSpec;
const inboxSpec: OptionSpecOf<PostgresInboxOptions> = {
  ...databaseSpec,
  groupCommit: 'boolean',
  maxGroup: 'positive-integer',
  maxGroups: 'positive-integer',
};

/** Checks `getPostgresInbox`'s options. */
export function checkPostgresInboxOptions(options: PostgresInboxOptions): void {
  checkDatabaseOptions(options, inboxSpec, 'getPostgresInbox', { optional: false }, (given) =>
    given.groupCommit === true
      ? []
      : (['maxGroup', 'maxGroups'] as const)
          .filter((name) => given[name] !== undefined)
          .map((name) => ({
            path: `getPostgresInbox.${name}`,
            message: 'sizes the groups of `groupCommit: true`: without it no group is formed (drop one of them)',
          })),
  );
}

/** Checks `getPostgresDeadLetterStore`'s options. */
export function checkPostgresDeadLetterStoreOptions(options: PostgresConsumerStoreOptions): void {
  checkDatabaseOptions(options, consumerStoreSpec, 'getPostgresDeadLetterStore');
}

const outboxSpec: OptionSpecOf<PostgresOutboxOptions> = { ...databaseSpec, now: 'function', schemas: schemasOption };

/** Checks `getPostgresOutbox`'s options. */
export function checkPostgresOutboxOptions(options: PostgresOutboxOptions): void {
  checkDatabaseOptions(options, outboxSpec, 'getPostgresOutbox');
}

const relaySpec: OptionSpecOf<PostgresOutboxRelayOptions> = {
  batchSize: 'positive-integer',
  pollMs: 'timer-ms',
  holdBackoffMaxMs: 'timer-ms',
  leaseCheckMs: 'timer-ms',
  leaseApplicationName: 'non-empty-string',
  connection: 'object',
  onError: 'function',
  onLeaseChange: 'function',
  logger: loggerKind,
};

/** Checks `startPostgresOutboxRelay`'s options. */
export function checkPostgresOutboxRelayOptions(options: PostgresOutboxRelayOptions | undefined): void {
  checkOptions(options, relaySpec, 'startPostgresOutboxRelay');
}

const backendSpec: OptionSpecOf<PostgresProjectionBackendOptions> = {
  connection: 'object',
  listenApplicationName: 'non-empty-string',
  listenReconnectInitialMs: 'timer-ms',
  listenReconnectMaxMs: 'timer-ms',
  onListenError: 'function',
  logger: loggerKind,
};

/** Checks `getPostgresProjectionBackend`'s options. */
export function checkPostgresProjectionBackendOptions(options: PostgresProjectionBackendOptions | undefined): void {
  checkOptions(options, backendSpec, 'getPostgresProjectionBackend');
}

/** The backend's own options out of the runner's wider (checked) ones. */
export function pickBackendOptions(options: PostgresProjectionsOptions): PostgresProjectionBackendOptions {
  return {
    connection: options.connection,
    listenApplicationName: options.listenApplicationName,
    listenReconnectInitialMs: options.listenReconnectInitialMs,
    listenReconnectMaxMs: options.listenReconnectMaxMs,
    onListenError: options.onListenError,
    logger: options.logger,
  };
}

const projectionsSpec: OptionSpecOf<PostgresProjectionsOptions> = {
  ...projectionRunnerSpec,
  ...backendSpec,
  leaseCheckMs: 'timer-ms',
  leaseApplicationName: 'non-empty-string',
  onLeaseChange: 'function',
};

/** Checks `startPostgresProjections`'s options. */
export function checkPostgresProjectionsOptions(options: PostgresProjectionsOptions | undefined): void {
  checkOptions(options, projectionsSpec, 'startPostgresProjections');
}

const tracerSpec: OptionSpecOf<PostgresTracerOptions> = { ...databaseSpec, now: 'function' };

/** Checks `getPostgresTracer`'s options. */
export function checkPostgresTracerOptions(options: PostgresTracerOptions): void {
  checkDatabaseOptions(options, tracerSpec, 'getPostgresTracer');
}

const snapshotStoreSpec: OptionSpecOf<PostgresSnapshotStoreOptions> = { ...databaseSpec, now: 'function' };

/** Checks `getPostgresSnapshotStore`'s options. */
export function checkPostgresSnapshotStoreOptions(options: PostgresSnapshotStoreOptions): void {
  checkDatabaseOptions(options, snapshotStoreSpec, 'getPostgresSnapshotStore');
}

const timerStoreSpec: OptionSpecOf<PostgresTimerStoreOptions> = databaseSpec;

/** Checks `getPostgresTimerStore`'s options. */
export function checkPostgresTimerStoreOptions(options: PostgresTimerStoreOptions): void {
  checkDatabaseOptions(options, timerStoreSpec, 'getPostgresTimerStore');
}

const { timers: _timers, lease: _lease, close: _close, ...pollerSpec } = workflowTimersSpec;
const workflowTimersOptionsSpec: OptionSpecOf<PostgresWorkflowTimersOptions> = { ...pollerSpec, schema: 'string' };

/** Checks `startPostgresWorkflowTimers`'s options: every one the poller would refuse, before anything connects. */
export function checkPostgresWorkflowTimersOptions(options: PostgresWorkflowTimersOptions): void {
  checkOptions(options, workflowTimersOptionsSpec, 'startPostgresWorkflowTimers', {
    required: ['handlers'],
    optional: false,
  });
  checkWorkflowHandlers(options.handlers, 'startPostgresWorkflowTimers');
}
