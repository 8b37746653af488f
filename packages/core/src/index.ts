/**
 * `@factline/core`: what an application uses. Helpers that only adapters need
 * live on `@factline/core/adapter`; conformance suites on `@factline/core/testing`.
 */

export { type Aggregate, aggregateDecider, type Decider, foldEvents, rehydrate } from './commands/decider.ts';
export { type HandleCommandOptions, type HandleCommandResult, handleCommand } from './commands/handle-command.ts';
export type {
  CommandSnapshots,
  SnapshotErrorContext,
  SnapshotPolicyContext,
} from './commands/snapshot-options.ts';
export * from './errors/index.ts';
export { uuidv7 } from './ids/uuid-v7.ts';
export type { Lease, LeaseProvider } from './lease/types.ts';
export { type LogFn, type Logger, silentLogger } from './logging/logger.ts';
export * from './messaging/index.ts';
export * from './projections/index.ts';
export * from './schema/index.ts';
export { getInMemorySnapshotStore, type InMemorySnapshotStoreOptions } from './snapshots/in-memory.ts';
export type { Snapshot, SnapshotKeyOptions, SnapshotStore, SnapshotToSave } from './snapshots/types.ts';
export { getInMemoryEventStore, type InMemoryEventStoreOptions } from './store/in-memory.ts';
export type * from './store/types.ts';
export type { StoreLimits } from './store/validation.ts';
export * from './tracing/index.ts';
export type { ProducerSpanRelation } from './tracing/span-relation.ts';
export * from './workflows/index.ts';
