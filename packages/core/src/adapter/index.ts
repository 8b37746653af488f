/**
 * `@factline/core/adapter`: the building blocks an adapter (a store, a
 * transport, a projection backend) is made of: input validation, append
 * preparation and idempotency, row codecs, option checking, the projection
 * runner and the leased and relay loops. An application does not need them;
 * they are kept off the main entry so its names stay the users' API.
 */

export { createLeaseGuard, type LeaseGuard } from '../lease/lease-guard.ts';
export { createLeasedLoop, type LeasedLoop, type LeasedLoopOptions, type LeasedWork } from '../lease/leased-loop.ts';
export { createLostSignal, type LostSignal } from '../lease/lost-signal.ts';
export { log, loggerKind } from '../logging/logger.ts';
export { redriveDeadLetter } from '../messaging/consumer-dead-letters.ts';
export {
  deadLetterIsAsRead,
  deadLetterMatches,
  deadLetterRedrivesJson,
  isPromiseLike,
  refreshedDeadLetter,
  storableDeadLetter,
} from '../messaging/consumer-ports.ts';
export { deadLetterFromJson, deadLetterToJson } from '../messaging/dead-letter-json.ts';
export {
  type DeadLetterConditions,
  type DeadLetterRow,
  deadLetterConditions,
  deadLetterRow,
} from '../messaging/dead-letter-rows.ts';
export { createKeyTally, type KeyTally } from '../messaging/key-tally.ts';
export type { LeasedDeliveries, LeasedRow, LeasedSettlement } from '../messaging/leased-deliveries.ts';
export { messageFromJson, messageToJson, prepareMessages } from '../messaging/message.ts';
export { assertMessages } from '../messaging/message-validation.ts';
export { createOutboxHold, type OutboxHold, type OutboxHoldOptions } from '../messaging/outbox-hold.ts';
export {
  type Outbox,
  type OutboxBacklog,
  type OutboxRelay,
  type OutboxRelayOptions,
  type OutboxRelaySettings,
  type OutboxRow,
  startOutboxRelay,
} from '../messaging/outbox-relay.ts';
export { checkTransportPublishOptions } from '../messaging/publish-options.ts';
export {
  type ClaimedMessage,
  createQueueSubscription,
  type QueueSubscriptionOptions,
} from '../messaging/queue-subscription.ts';
export { createQueueTransport, type QueueOperations } from '../messaging/queue-transport.ts';
export { createReceiveWakeups, type ReceiveWakeups, type SubscriptionWaits } from '../messaging/receive-wakeups.ts';
export { createRelayStatus, type RelayStatus, type RelayStatusCallbacks } from '../messaging/relay-status.ts';
export { createWakeablePause, type WakeablePause } from '../messaging/wakeable-pause.ts';
export {
  type CheckOptionsSettings,
  checkOptions,
  describeValue,
  MAX_TIMER_MS,
  type OptionKind,
  type OptionSpec,
  type OptionSpecOf,
} from '../options/check-options.ts';
export { checkSubscribeOptions, projectionRunnerSpec, schemasOption } from '../options/core-options.ts';
export { pickProjectionRunnerOptions } from '../options/runner-options.ts';
export { waitForAppendSignal } from '../projections/append-wait.ts';
export {
  createLeasedProjections,
  type LeasedProjectionRunner,
  type LeasedProjectionsSettings,
  projectionLeaseName,
} from '../projections/leased-projections.ts';
export { createProjectionRunner } from '../projections/runner.ts';
export {
  checkRebuildVersion,
  type ProjectionBackend,
  type ProjectionCommit,
  type ProjectionControl,
  type ProjectionVersionRef,
  parseProjectionVersionKey,
  projectionVersionKey,
} from '../projections/types.ts';
export {
  decodeEvent,
  decodeMessage,
  messageKind,
  messageSchemaVersion,
  SCHEMA_VERSION_HEADER,
} from '../schema/decode.ts';
export { encodeMessagesNow } from '../schema/encode-messages.ts';
export { decodeFailureOf, readAllForProjection } from '../schema/projection-read.ts';
export { type SchemaSource, schemaSourceOf, withSchemas } from '../schema/schema-store.ts';
export {
  checkSnapshotKey,
  type PreparedSnapshot,
  prepareSnapshot,
  type StoredSnapshot,
  snapshotFromStored,
} from '../snapshots/prepare.ts';
export { lazyAppendResult, storedAppendResult } from '../store/append-result.ts';
export { matchRetriedAppend, type StoredEvent, toRecordedEvent } from '../store/idempotency.ts';
export { checkInlineProjections, inlineEvents, inlineProjectionFailure } from '../store/inline-projections.ts';
export { isStorableText, isWellFormedText, storableFailureText } from '../store/json-checks.ts';
export {
  appliesReadAllMap,
  type ReadAllMap,
  type ReadAllPages,
  readAllInPages,
} from '../store/read-all-pages.ts';
export {
  type NormalizedReadAll,
  type NormalizedReadStream,
  normalizeReadAll,
  normalizeReadStream,
} from '../store/read-options.ts';
export {
  checkAppendOptions,
  checkReadAllOptions,
  checkReadStreamOptions,
  checkStoreLimits,
  normalizeDeleteStream,
} from '../store/store-options.ts';
export {
  checkDeleteRequest,
  checkTruncateRequest,
  type DeleteRequest,
  decideDelete,
  decideTruncate,
  liveVersion,
  type StreamState,
  streamInfoOf,
} from '../store/stream-rules.ts';
export {
  assertDeleteMode,
  assertExpectedVersion,
  assertIntegerOption,
  assertName,
  assertNameList,
  assertPosition,
  assertStreamId,
  checkExpectedVersion,
  defaultStoreLimits,
  type PreparedAppend,
  type PreparedEvent,
  prepareAppend,
  streamCategory,
} from '../store/validation.ts';
export { type BuildTraceSettings, buildTraceTree } from '../tracing/build-trace.ts';
export {
  checkTraceInput,
  createOperationTracer,
  DEFAULT_TRACE_LIMIT,
  MAX_TRACE_LIMIT,
  type OperationTracerSettings,
} from '../tracing/operation-tracer.ts';
export { instrumentEventStore } from '../tracing/store-spans.ts';
export { type TraceRows, traceRowDecoders } from '../tracing/trace-rows.ts';
export type {
  TracedEvent,
  TracedHandling,
  TracedOutboxEntry,
  TracedQueuedMessage,
  TraceReader,
  TraceSources,
} from '../tracing/trace-sources.ts';
export { checkWorkflowHandlers, workflowTimersSpec } from '../workflows/timers/poller.ts';
export { timerChanges, timerEventTypes } from '../workflows/timers/timer-changes.ts';
export type { TimerChange } from '../workflows/timers/types.ts';
export { inCallerScope, type QueuedRun } from './caller-scope.ts';
export { answerWithin, settledWithin } from './deadline.ts';
export {
  type BufferedEntry,
  type BufferSettlement,
  type BufferSettler,
  createDeliveryBuffer,
  type DeliveryBuffer,
  type DeliveryBufferOptions,
} from './delivery-buffer.ts';
export { type KeptOnSuccess, keptOnSuccess } from './kept-on-success.ts';
export { redactUrl } from './redact-url.ts';
export { componentVersions, type SchemaComponentVersion } from './schema-versions.ts';
export {
  answersInTls,
  type PlainUrlSettings,
  plainUrlToTlsPort,
  type TlsFailure,
  type TlsOptions,
  tlsConnectOptions,
  tlsFailure,
  tlsHint,
  tlsOptionProblem,
} from './tls.ts';
