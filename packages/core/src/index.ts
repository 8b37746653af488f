export { type Aggregate, aggregateDecider, type Decider, foldEvents, rehydrate } from './commands/decider.ts';
export { type HandleCommandOptions, type HandleCommandResult, handleCommand } from './commands/handle-command.ts';
export * from './errors/index.ts';
export { uuidv7 } from './ids/uuid-v7.ts';
export * from './messaging/index.ts';
export {
  type CheckOptionsSettings,
  checkOptions,
  describeValue,
  type OptionKind,
  type OptionSpec,
  type OptionSpecOf,
} from './options/check-options.ts';
export { checkSubscribeOptions, projectionRunnerSpec } from './options/core-options.ts';
export { pickProjectionRunnerOptions } from './options/runner-options.ts';
export * from './projections/index.ts';
export { lazyAppendResult, storedAppendResult } from './store/append-result.ts';
export { matchRetriedAppend, type StoredEvent, toRecordedEvent } from './store/idempotency.ts';
export { getInMemoryEventStore, type InMemoryEventStoreOptions } from './store/in-memory.ts';
export {
  type NormalizedReadAll,
  type NormalizedReadStream,
  normalizeReadAll,
  normalizeReadStream,
} from './store/read-options.ts';
export {
  checkAppendOptions,
  checkReadAllOptions,
  checkReadStreamOptions,
  checkStoreLimits,
  normalizeDeleteStream,
} from './store/store-options.ts';
export type * from './store/types.ts';
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
  isWellFormedText,
  type PreparedAppend,
  type PreparedEvent,
  prepareAppend,
  type StoreLimits,
  streamCategory,
} from './store/validation.ts';
