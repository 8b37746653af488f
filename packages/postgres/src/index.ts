export {
  getPostgresDeadLetterStore,
  getPostgresInbox,
  type PostgresConsumerStoreOptions,
  type PostgresDeadLetterStore,
  type PostgresInbox,
  type PostgresInboxOptions,
} from './messaging/postgres-consumer-stores.ts';
export {
  getPostgresTransport,
  type PostgresTransport,
  type PostgresTransportErrorStage,
  type PostgresTransportOptions,
} from './messaging/postgres-transport.ts';
export {
  getPostgresOutbox,
  type OutboxQueryable,
  type PostgresOutbox,
  type PostgresOutboxOptions,
  type PostgresOutboxRelay,
  type PostgresOutboxRelayOptions,
  type PostgresOutboxRelayStats,
  startPostgresOutboxRelay,
} from './outbox/postgres-outbox.ts';
export {
  getPostgresProjectionBackend,
  type PostgresProjectionBackend,
  type PostgresProjectionBackendOptions,
  type PostgresProjectionRunner,
  type PostgresProjectionStatus,
  type PostgresProjectionsOptions,
  readLiveProjectionVersion,
  startPostgresProjections,
} from './projections/postgres-projections.ts';
export { readPostgresSchemaVersions, type SchemaComponentVersion } from './schema-versions.ts';
export {
  getPostgresSnapshotStore,
  type PostgresSnapshotStore,
  type PostgresSnapshotStoreOptions,
} from './snapshots/postgres-snapshot-store.ts';
export type { AppendBatchStats } from './store/append-batcher.ts';
export {
  getPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
  type PostgresStoreStats,
} from './store/postgres-event-store.ts';
export { postgresTraceReader } from './tracing/postgres-trace-reader.ts';
export { getPostgresTracer, type PostgresTracer, type PostgresTracerOptions } from './tracing/postgres-tracer.ts';
export {
  getPostgresTimerStore,
  type PostgresTimerStore,
  type PostgresTimerStoreOptions,
  postgresTimerProjection,
} from './workflows/postgres-timer-store.ts';
export {
  type PostgresWorkflowTimersOptions,
  startPostgresWorkflowTimers,
} from './workflows/postgres-workflow-timers.ts';
