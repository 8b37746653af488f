export {
  createSqliteLease,
  type SqliteLease,
  type SqliteLeaseOptions,
  type SqliteLeaseRow,
} from './lease.ts';
export {
  getSqliteDeadLetterStore,
  getSqliteInbox,
  type SqliteConsumerStoreOptions,
  type SqliteInboxOptions,
} from './messaging/sqlite-consumer-stores.ts';
export {
  getSqliteTransport,
  type SqliteTransport,
  type SqliteTransportOptions,
} from './messaging/sqlite-transport.ts';
export {
  getSqliteOutbox,
  type SqliteOutbox,
  type SqliteOutboxOptions,
  type SqliteOutboxRelay,
  type SqliteOutboxRelayOptions,
  type SqliteOutboxRelayStats,
  startSqliteOutboxRelay,
} from './outbox/sqlite-outbox.ts';
export {
  getSqliteProjectionBackend,
  readLiveProjectionVersion,
  type SqliteProjectionRunner,
  type SqliteProjectionStatus,
  type SqliteProjectionsOptions,
  startSqliteProjections,
} from './projections/sqlite-projections.ts';
export { readSqliteSchemaVersions, type SchemaComponentVersion } from './schema-versions.ts';
export { getSqliteSnapshotStore, type SqliteSnapshotStoreOptions } from './snapshots/sqlite-snapshot-store.ts';
export {
  getSqliteEventStore,
  openSqliteDatabase,
  type SqliteEventStore,
  type SqliteEventStoreOptions,
} from './store/sqlite-event-store.ts';
export type { WriteQueueStats } from './store/write-queue.ts';
export { getSqliteTracer, type SqliteTracerOptions } from './tracing/sqlite-tracer.ts';
export {
  getSqliteTimerStore,
  type SqliteTimerStoreOptions,
  sqliteTimerProjection,
} from './workflows/sqlite-timer-store.ts';
export { type SqliteWorkflowTimersOptions, startSqliteWorkflowTimers } from './workflows/sqlite-workflow-timers.ts';
