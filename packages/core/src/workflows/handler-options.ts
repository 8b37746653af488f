import { isNonRetryableError, isValidationError } from '../errors/index.ts';
import { type Logger, log, loggerKind } from '../logging/logger.ts';
import { checkOptions, type OptionSpecOf } from '../options/check-options.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import type { EventStore } from '../store/types.ts';
import { inputRegistryOf } from './input-schema.ts';
import { type ResolvedWorkflowSnapshots, resolveWorkflowSnapshots, type WorkflowSnapshots } from './snapshots.ts';
import type { WorkflowInput } from './types.ts';

/** `createWorkflowHandler`'s options; `State` types the `snapshots` option's functions. */
export interface WorkflowHandlerOptions<State = unknown> {
  /**
   * Where the instances' streams are. With a schema registry (`schemas`), an
   * input of a type it defines reaches `decide`, and `evolve` when the
   * instance loads, at its current version (see docs/workflows.md).
   */
  store: EventStore;
  /** Clock for `afterMs` timers and for telling which timers are due. Default `Date.now`. */
  now?: () => number;
  /**
   * An input that names no existing instance and may not start one (or that
   * `correlate` maps to none). Default: ignored and counted (`stats()['not-found']`).
   */
  onNotFound?: (input: WorkflowInput, instanceId: string | undefined) => void;
  /**
   * Which errors of `decide` park the instance instead of going back to the
   * caller (the consumer's retry policy). Default: errors marked not
   * retryable (`NonRetryableError`, `ValidationError`, any Factline error with
   * `retryable: false`).
   */
  isTerminal?: (error: unknown) => boolean;
  /** Told each instance it parks (after the park is recorded). */
  onParked?: (streamId: string, error: unknown, input: WorkflowInput) => void;
  /** Where hook failures and drops are reported. Default: silent. */
  logger?: Logger;
  /** Reloads after a conflicting append before giving up (the error then goes to the caller). Default 50. */
  maxConflicts?: number;
  /**
   * Load each instance from its latest snapshot and the events after it, and
   * write one when the policy says so. Default: no snapshots (every load
   * folds the whole stream). See {@link WorkflowSnapshots}.
   */
  snapshots?: WorkflowSnapshots<State>;
}

const spec: OptionSpecOf<WorkflowHandlerOptions> = {
  store: 'object',
  now: 'function',
  onNotFound: 'function',
  isTerminal: 'function',
  onParked: 'function',
  logger: loggerKind,
  maxConflicts: 'positive-integer',
  snapshots: 'object',
};

export type ResolvedHandlerOptions<State = unknown> = Required<
  Omit<WorkflowHandlerOptions, 'onNotFound' | 'onParked' | 'logger' | 'snapshots'>
> &
  Pick<WorkflowHandlerOptions, 'onNotFound' | 'onParked' | 'logger'> & {
    snapshots?: ResolvedWorkflowSnapshots<State>;
    /** The store's registry: inputs are decoded by it, scheduled messages stamped. */
    schemas?: SchemaRegistry;
  };

const defaultTerminal = (error: unknown) =>
  isNonRetryableError(error) ||
  isValidationError(error) ||
  (typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false);

export function resolveHandlerOptions<State>(
  given: WorkflowHandlerOptions<State>,
  initialState: () => State,
): ResolvedHandlerOptions<State> {
  checkOptions(given, spec, 'createWorkflowHandler', { required: ['store'], optional: false });
  const { snapshots, ...rest } = given;
  return {
    ...rest,
    now: given.now ?? Date.now,
    isTerminal: given.isTerminal ?? defaultTerminal,
    maxConflicts: given.maxConflicts ?? 50,
    schemas: inputRegistryOf(given.store),
    ...(snapshots === undefined ? {} : { snapshots: resolveWorkflowSnapshots(snapshots, initialState, given.logger) }),
  };
}

/** Calls a user's hook; its failure is logged, never thrown. */
export function callHook(logger: Logger | undefined, hook: string, call: () => void): void {
  try {
    call();
  } catch (error) {
    log(logger, 'error', { hook, err: error }, 'workflow hook failed');
  }
}

/** Logs a park and tells `onParked` (after the park is recorded). */
export function reportParked<State>(
  options: ResolvedHandlerOptions<State>,
  streamId: string,
  error: unknown,
  input: WorkflowInput,
): void {
  log(options.logger, 'warn', { streamId, inputId: input.id, err: error }, 'workflow instance parked');
  const hook = options.onParked;
  if (hook) callHook(options.logger, 'onParked', () => hook(streamId, error, input));
}
