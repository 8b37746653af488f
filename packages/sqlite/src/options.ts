import {
  checkOptions,
  checkStoreLimits,
  checkWorkflowHandlers,
  loggerKind,
  type OptionKind,
  type OptionSpecOf,
  projectionRunnerSpec,
  schemasOption,
  workflowTimersSpec,
} from '@factline/core/adapter';
import type { SqliteLeaseOptions } from './lease.ts';
import type { SqliteConsumerStoreOptions, SqliteInboxOptions } from './messaging/sqlite-consumer-stores.ts';
import type { SqliteTransportOptions } from './messaging/sqlite-transport.ts';
import type { SqliteOutboxOptions, SqliteOutboxRelayOptions } from './outbox/sqlite-outbox.ts';
import type { SqliteProjectionsOptions } from './projections/sqlite-projections.ts';
import type { SqliteSnapshotStoreOptions } from './snapshots/sqlite-snapshot-store.ts';
import type { SqliteEventStoreOptions } from './store/sqlite-event-store.ts';
import type { SqliteTracerOptions } from './tracing/sqlite-tracer.ts';
import type { SqliteTimerStoreOptions } from './workflows/sqlite-timer-store.ts';
import type { SqliteWorkflowTimersOptions } from './workflows/sqlite-workflow-timers.ts';

// The option specs of the SQLite package's factories, beside each other so a reader sees every name once.

const database: OptionKind = (value) =>
  typeof (value as { prepare?: unknown } | null)?.prepare === 'function'
    ? undefined
    : 'must be a better-sqlite3 Database';
const synchronous: OptionKind = { oneOf: ['full', 'normal'] };

const connectionSpec = { synchronous, busyTimeoutMs: 'non-negative-integer' } as const;

/** Checks `openSqliteDatabase`'s options. */
export function checkOpenDatabaseOptions(
  options: Pick<SqliteEventStoreOptions, 'synchronous' | 'busyTimeoutMs'> | undefined,
): void {
  checkOptions(options, connectionSpec, 'openSqliteDatabase');
}

/** The connection settings out of a factory's wider (checked) options. */
export function connectionOptions(
  options: Pick<SqliteEventStoreOptions, 'synchronous' | 'busyTimeoutMs'>,
): Pick<SqliteEventStoreOptions, 'synchronous' | 'busyTimeoutMs'> {
  return { synchronous: options.synchronous, busyTimeoutMs: options.busyTimeoutMs };
}

const eventStoreSpec: OptionSpecOf<SqliteEventStoreOptions> = {
  path: 'string',
  ...connectionSpec,
  limits: 'object',
  now: 'function',
  maxBatch: 'positive-integer',
  inlineProjections: 'array',
  schemas: schemasOption,
};

/** Checks `getSqliteEventStore`'s options. */
export function checkSqliteEventStoreOptions(options: SqliteEventStoreOptions): void {
  checkOptions(options, eventStoreSpec, 'getSqliteEventStore', { required: ['path'] });
  checkStoreLimits(options.limits, 'getSqliteEventStore.limits');
}

const transportSpec: OptionSpecOf<SqliteTransportOptions> = {
  database,
  path: 'string',
  ...connectionSpec,
  pollIntervalMs: 'timer-ms',
  now: 'function',
};

/** Checks `getSqliteTransport`'s options. */
export function checkSqliteTransportOptions(options: SqliteTransportOptions): void {
  checkOptions(options, transportSpec, 'getSqliteTransport', { optional: false });
}

const consumerStoreSpec: OptionSpecOf<SqliteConsumerStoreOptions> = { database };
const inboxSpec: OptionSpecOf<SqliteInboxOptions> = {
  database,
  groupCommit: 'boolean',
  maxGroup: 'positive-integer',
  chainBudgetMs: 'non-negative-integer',
  maxWriteHoldMs: 'timer-ms',
};

/** Checks `getSqliteInbox`'s options. */
export function checkSqliteInboxOptions(options: SqliteInboxOptions): void {
  checkOptions(options, inboxSpec, 'getSqliteInbox', { required: ['database'] });
}

/** Checks `getSqliteDeadLetterStore`'s options. */
export function checkSqliteDeadLetterStoreOptions(options: SqliteConsumerStoreOptions): void {
  checkOptions(options, consumerStoreSpec, 'getSqliteDeadLetterStore', { required: ['database'] });
}

const outboxSpec: OptionSpecOf<SqliteOutboxOptions> = { database, now: 'function', schemas: schemasOption };

/** Checks `getSqliteOutbox`'s options. */
export function checkSqliteOutboxOptions(options: SqliteOutboxOptions): void {
  checkOptions(options, outboxSpec, 'getSqliteOutbox', { required: ['database'] });
}

const leaseSpec = { leaseTtlMs: 'timer-ms', leaseCheckMs: 'timer-ms', lease: 'boolean' } as const;

const relaySpec: OptionSpecOf<SqliteOutboxRelayOptions> = {
  batchSize: 'positive-integer',
  pollMs: 'timer-ms',
  holdBackoffMaxMs: 'timer-ms',
  ...leaseSpec,
  leaseCheckMs: 'timer-ms',
  onError: 'function',
  onLeaseChange: 'function',
  logger: loggerKind,
};

/** Checks `startSqliteOutboxRelay`'s options. */
export function checkSqliteOutboxRelayOptions(options: SqliteOutboxRelayOptions | undefined): void {
  checkOptions(options, relaySpec, 'startSqliteOutboxRelay');
}

const projectionsSpec: OptionSpecOf<SqliteProjectionsOptions> = {
  ...projectionRunnerSpec,
  ...leaseSpec,
  maxWriteHoldMs: 'timer-ms',
  onLeaseChange: 'function',
};

/** Checks `startSqliteProjections`'s options. */
export function checkSqliteProjectionsOptions(options: SqliteProjectionsOptions | undefined): void {
  checkOptions(options, projectionsSpec, 'startSqliteProjections');
}

const sqliteLeaseSpec: OptionSpecOf<SqliteLeaseOptions> = {
  database,
  name: 'non-empty-string',
  // Its holder renews it on a timer: past a timer's limit a crashed holder's lease would outlive it by weeks or ages.
  ttlMs: 'timer-ms',
  holder: 'non-empty-string',
  now: 'function',
};

/** Checks `createSqliteLease`'s options. */
export function checkSqliteLeaseOptions(options: SqliteLeaseOptions): void {
  checkOptions(options, sqliteLeaseSpec, 'createSqliteLease', { required: ['database', 'name', 'ttlMs'] });
}

const tracerSpec: OptionSpecOf<SqliteTracerOptions> = { database, now: 'function' };

/** Checks `getSqliteTracer`'s options. */
export function checkSqliteTracerOptions(options: SqliteTracerOptions): void {
  checkOptions(options, tracerSpec, 'getSqliteTracer', { required: ['database'] });
}

const snapshotStoreSpec: OptionSpecOf<SqliteSnapshotStoreOptions> = { database, now: 'function' };

/** Checks `getSqliteSnapshotStore`'s options. */
export function checkSqliteSnapshotStoreOptions(options: SqliteSnapshotStoreOptions): void {
  checkOptions(options, snapshotStoreSpec, 'getSqliteSnapshotStore', { required: ['database'] });
}

const { timers: _timers, lease: _lease, close: _close, ...pollerSpec } = workflowTimersSpec;
const workflowTimersSpecOf: OptionSpecOf<SqliteWorkflowTimersOptions> = {
  ...pollerSpec,
  // A timer's range here; checked against leaseCheckMs by `leaseTimings`.
  leaseTtlMs: 'timer-ms',
  leaseCheckMs: 'timer-ms',
};

/** Checks `startSqliteWorkflowTimers`'s options: every one the poller would refuse, before the file is written. */
export function checkSqliteWorkflowTimersOptions(options: SqliteWorkflowTimersOptions): void {
  checkOptions(options, workflowTimersSpecOf, 'startSqliteWorkflowTimers', { required: ['handlers'], optional: false });
  checkWorkflowHandlers(options.handlers, 'startSqliteWorkflowTimers');
}

const timerStoreSpec: OptionSpecOf<SqliteTimerStoreOptions> = { database };

/** Checks `getSqliteTimerStore`'s options. */
export function checkSqliteTimerStoreOptions(options: SqliteTimerStoreOptions): void {
  checkOptions(options, timerStoreSpec, 'getSqliteTimerStore', { required: ['database'], optional: false });
}
