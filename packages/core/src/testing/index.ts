/**
 * `@factline/core/testing`: the conformance suites every adapter runs against
 * itself, and helpers for users' tests. Kept off the main entry so that
 * production code never loads `node:test` or `node:assert`.
 */

export { createInMemoryLeases, type InMemoryLeaseTable } from '../lease/in-memory.ts';
export { createVirtualClock, type VirtualClock } from '../workflows/timers/clock.ts';
export { spawnTestChild, type TestChild } from './child-process.ts';
export {
  type CaseContext,
  type ConformanceCase,
  type EventStoreFactory,
  eventStoreConformanceCases,
} from './conformance/index.ts';
export {
  type ConsumerCaseContext,
  type ConsumerConformanceCase,
  type ConsumerConformanceOptions,
  type ConsumerEnvironment,
  type ConsumerRequirement,
  consumerConformanceCases,
  consumerSkipReasons,
  testConsumerConformance,
} from './consumer-conformance.ts';
export { type DeciderThen, deciderSpecification } from './decider-specification.ts';
export { type EventStoreConformanceOptions, testEventStoreConformance } from './event-store-conformance.ts';
export { createInMemoryOutbox, type InMemoryOutbox, type InMemoryOutboxOptions } from './in-memory-outbox.ts';
export { type LeaseConformanceOptions, testLeaseConformance } from './lease-conformance.ts';
export { mapDeliveries } from './map-deliveries.ts';
export { backendHooks, OUTAGE_BOUND_MS, type OutageHook } from './outage.ts';
export {
  type OutboxRelayConformanceOptions,
  type OutboxRelayEnvironment,
  testOutboxRelayConformance,
} from './outbox-relay-conformance.ts';
export {
  type CaseNames,
  type CounterModel,
  type CounterSnapshot,
  type ProjectionCaseContext,
  type ProjectionConformanceCase,
  type ProjectionConformanceOptions,
  type ProjectionEnvironment,
  projectionConformanceCases,
  testProjectionConformance,
} from './projection-conformance.ts';
export {
  getInMemoryProjectionBackend,
  type InMemoryProjectionBackend,
  type InMemoryProjectionTx,
} from './projections/in-memory-backend.ts';
export * as schemaStoreFixtures from './schema-store/fixtures.ts';
export {
  type SchemaStoreCase,
  type SchemaStoreCaseContext,
  type SchemaStoreConformanceOptions,
  type SchemaStores,
  schemaStoreCases,
  testSchemaStoreConformance,
} from './schema-store-conformance.ts';
export { freeServerPort } from './server-port.ts';
export {
  type ShutdownOrdersOptions,
  type ShutdownPart,
  type ShutdownService,
  testShutdownOrders,
} from './shutdown-orders.ts';
export { type SnapshotStoreConformanceOptions, testSnapshotStoreConformance } from './snapshot-store-conformance.ts';
export {
  type SnapshotCaseContext,
  type SnapshotConformanceCase,
  type SnapshotEnvironment,
  snapshotStoreConformanceCases,
} from './snapshots/index.ts';
export { type StartUpBackend, type StartUpOrdersOptions, testStartUpOrders } from './start-up-orders.ts';
export {
  type TimerStoreConformanceOptions,
  testTimerStoreConformance,
  timerStoreConformanceCases,
} from './timer-store-conformance.ts';
export type { TimerCaseContext, TimerConformanceCase, TimerEnvironment, TimerInput } from './timers/context.ts';
export { type TraceEnvironment, type TraceOperationOptions, testTraceOperation } from './trace-operation.ts';
export {
  type ReceiveOptions,
  type TransportCaseContext,
  type TransportCaseHooks,
  type TransportConformanceCase,
  type TransportConformanceOptions,
  type TransportRequirement,
  testTransportConformance,
  transportConformanceCases,
  transportSkipReasons,
} from './transport-conformance.ts';
export { settlesWithin, waitUntil } from './wait-until.ts';
export {
  createWorkflowScenario,
  type ScenarioContext,
  type ScenarioHandler,
  type ScenarioSnapshots,
  type WorkflowScenario,
  type WorkflowScenarioOptions,
} from './workflow-scenario.ts';
export { type WorkflowThen, workflowSpecification } from './workflow-specification.ts';
