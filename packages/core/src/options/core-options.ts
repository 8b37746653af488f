import type { HandleCommandOptions } from '../commands/handle-command.ts';
import { ValidationError } from '../errors/index.ts';
import { loggerKind } from '../logging/logger.ts';
import type { EventBusOptions } from '../messaging/event-bus.ts';
import type { EventRelayOptions } from '../messaging/event-relay.ts';
import type { InMemoryTransportOptions } from '../messaging/in-memory-transport.ts';
import type { SubscribeOptions } from '../messaging/transport.ts';
import type { ProjectionRunnerOptions, RebuildOptions, WaitForOptions } from '../projections/runner.ts';
import type { InMemoryEventStoreOptions } from '../store/in-memory.ts';
import { checkStoreLimits } from '../store/store-options.ts';
import { assertExpectedVersion } from '../store/validation.ts';
import { checkOptions, describeValue, type OptionKind, type OptionSpecOf } from './check-options.ts';

// The option specs of core's factories and methods, beside each other so a reader sees every name once.

const expectedVersion = (value: unknown) => {
  try {
    assertExpectedVersion(value);
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^[^:]*: /, '');
  }
};

const nonEmptyNames = (value: unknown) =>
  Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.length > 0)
    ? undefined
    : 'must be a non-empty array of non-empty strings';

/** The `schemas` option of stores, outboxes and consumers: a registry made by `createSchemaRegistry`. */
export const schemasOption: OptionKind = (value) => {
  const registry = value as { encode?: unknown; decode?: unknown; definitions?: unknown } | null;
  return typeof registry?.encode === 'function' &&
    typeof registry.decode === 'function' &&
    typeof registry.definitions === 'function'
    ? undefined
    : `must be a schema registry (createSchemaRegistry), got ${describeValue(value)}`;
};

const inMemoryEventStoreSpec: OptionSpecOf<InMemoryEventStoreOptions> = {
  limits: 'object',
  now: 'function',
  schemas: schemasOption,
};

/** Checks `getInMemoryEventStore`'s options. */
export function checkInMemoryEventStoreOptions(options: unknown): InMemoryEventStoreOptions | undefined {
  const checked = checkOptions(
    options as InMemoryEventStoreOptions | undefined,
    inMemoryEventStoreSpec,
    'getInMemoryEventStore',
  );
  checkStoreLimits(checked?.limits, 'getInMemoryEventStore.limits');
  return checked;
}

const subscribeSpec: OptionSpecOf<SubscribeOptions> = { visibilityTimeoutMs: 'timer-ms' };

/** Checks a transport's `subscribe` options (the same on every transport). */
export function checkSubscribeOptions(options: unknown): SubscribeOptions | undefined {
  return checkOptions(options as SubscribeOptions | undefined, subscribeSpec, 'subscribe options');
}

const inMemoryTransportSpec: OptionSpecOf<InMemoryTransportOptions> = { now: 'function' };

/** Checks `getInMemoryTransport`'s options. */
export function checkInMemoryTransportOptions(options: unknown): InMemoryTransportOptions | undefined {
  return checkOptions(options as InMemoryTransportOptions | undefined, inMemoryTransportSpec, 'getInMemoryTransport');
}

const eventBusSpec: OptionSpecOf<EventBusOptions> = {
  transport: 'object',
  topic: 'non-empty-string',
  schemas: schemasOption,
};

/** Checks `createEventBus`'s options. */
export function checkEventBusOptions(options: unknown): EventBusOptions {
  return checkOptions(options as EventBusOptions, eventBusSpec, 'createEventBus', { required: ['transport'] });
}

const eventRelaySpec: OptionSpecOf<EventRelayOptions> = {
  name: 'non-empty-string',
  transport: 'object',
  topic: 'non-empty-string',
  handles: nonEmptyNames,
};

/** Checks `defineEventRelay`'s options. */
export function checkEventRelayOptions(options: unknown): EventRelayOptions {
  return checkOptions(options as EventRelayOptions, eventRelaySpec, 'defineEventRelay', {
    required: ['name', 'transport', 'topic', 'handles'],
  });
}

const handleCommandSpec: OptionSpecOf<HandleCommandOptions> = {
  expectedVersion,
  maxAttempts: 'positive-integer',
  initialBackoffMs: 'delay-ms',
  maxBackoffMs: 'delay-ms',
  metadata: 'object',
  // Checked in full by `resolveSnapshots`, which needs the decider.
  snapshots: 'object',
  sleep: 'function',
  random: 'function',
};

/** Checks `handleCommand`'s options. */
export function checkHandleCommandOptions(options: unknown): HandleCommandOptions | undefined {
  return checkOptions(options as HandleCommandOptions | undefined, handleCommandSpec, 'handleCommand options');
}

/** The projection runner's options, for adapters whose runner options extend them. */
export const projectionRunnerSpec: OptionSpecOf<ProjectionRunnerOptions> = {
  batchSize: 'positive-integer',
  maxBatchSize: 'positive-integer',
  maxAttempts: 'positive-integer',
  initialBackoffMs: 'delay-ms',
  maxBackoffMs: 'delay-ms',
  idleCheckMs: 'timer-ms',
  onError: 'function',
  onSwitch: 'function',
  logger: loggerKind,
  sleep: 'function',
  random: 'function',
};

/** Checks `createProjectionRunner`'s options; `maxBatchSize` is at least `batchSize` (default 500). */
export function checkProjectionRunnerOptions(options: unknown): ProjectionRunnerOptions | undefined {
  const checked = checkOptions(
    options as ProjectionRunnerOptions | undefined,
    projectionRunnerSpec,
    'createProjectionRunner',
  );
  const batchSize = checked?.batchSize ?? 500;
  if (checked?.maxBatchSize !== undefined && checked.maxBatchSize < batchSize) {
    throw new ValidationError({
      path: 'createProjectionRunner.maxBatchSize',
      message: `must be at least batchSize (${batchSize}), got ${checked.maxBatchSize}`,
    });
  }
  const initialBackoffMs = checked?.initialBackoffMs ?? 100;
  if (checked?.maxBackoffMs !== undefined && checked.maxBackoffMs < initialBackoffMs) {
    throw new ValidationError({
      path: 'createProjectionRunner.maxBackoffMs',
      message: `must be at least initialBackoffMs (${initialBackoffMs}), got ${checked.maxBackoffMs}`,
    });
  }
  return checked;
}

const waitForSpec: OptionSpecOf<WaitForOptions> = { timeoutMs: 'timer-ms' };
const rebuildSpec: OptionSpecOf<RebuildOptions> = { onProgress: 'function' };

/** Checks `waitFor`'s options. */
export function checkWaitForOptions(options: unknown): WaitForOptions | undefined {
  return checkOptions(options as WaitForOptions | undefined, waitForSpec, 'waitFor options');
}

/** Checks `rebuild`'s options. */
export function checkRebuildOptions(options: unknown): RebuildOptions | undefined {
  return checkOptions(options as RebuildOptions | undefined, rebuildSpec, 'rebuild options');
}
