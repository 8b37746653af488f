import { ValidationError } from '../errors/index.ts';
import { checkOptions, describeValue, type OptionKind, type OptionSpecOf } from '../options/check-options.ts';
import { snapshotVersionKind } from '../snapshots/prepare.ts';
import { DEFAULT_SNAPSHOT_NAME, type SnapshotStore } from '../snapshots/types.ts';
import { isPlainObject } from '../store/json-checks.ts';
import type { Event, RecordedOf } from '../store/types.ts';

/** What a snapshot policy function sees once the command's events are stored. */
export interface SnapshotPolicyContext<State, E extends Event = Event> {
  /** The state after the new events. */
  state: State;
  /** The stream's version after the command. */
  version: number;
  newEvents: readonly RecordedOf<E>[];
  /** Events since the snapshot the command started from (all of them when it used none). */
  eventsSinceSnapshot: number;
}

/** Where a snapshot failure happened; the command itself is not affected. */
export interface SnapshotErrorContext {
  streamId: string;
  name: string;
  /** `load`: the state was rebuilt from the events instead; `save`/`policy`: no snapshot written; `delete`: an untrusted snapshot stayed. */
  operation: 'load' | 'save' | 'delete' | 'policy';
}

/** `handleCommand`'s `snapshots` option. */
export interface CommandSnapshots<State, E extends Event = Event> {
  store: SnapshotStore;
  /**
   * The version of the state's shape. Bump it when `evolve` or the state
   * changes: snapshots of another version are ignored (never upcast), the
   * state is rebuilt from the events and the next snapshot replaces them.
   */
  version: number;
  /**
   * When to write a snapshot after a command stored events. A number N: when
   * the stream crossed a multiple of N since the snapshot the command started
   * from. A function: when it returns true. Default: never (snapshots are
   * only read, e.g. written by another process).
   */
  every?: number | ((context: SnapshotPolicyContext<State, E>) => boolean);
  /** Lets two deciders keep a snapshot of one stream each. Default `'default'`. */
  name?: string;
  /** The state as JSON data. Default: the state itself. Required for a class instance. */
  toSnapshot?: (state: State) => unknown;
  /** The state back from that JSON data. Default: the data itself. Required for a class instance. */
  fromSnapshot?: (data: unknown) => State;
  /**
   * Told of every snapshot failure. Required: a snapshot never fails or
   * delays a command, so this is the only place a failure shows.
   */
  onError: (error: unknown, context: SnapshotErrorContext) => void;
}

/** The `snapshots` option checked, with its defaults filled in. */
export interface ResolvedSnapshots<State, E extends Event> {
  store: SnapshotStore;
  version: number;
  every: CommandSnapshots<State, E>['every'];
  name: string;
  toSnapshot: (state: State) => unknown;
  fromSnapshot: (data: unknown) => State;
  report: (error: unknown, streamId: string, operation: SnapshotErrorContext['operation']) => void;
}

export const snapshotStoreKind: OptionKind = (value) => {
  const candidate = value as Partial<SnapshotStore> | null;
  return typeof candidate?.load === 'function' &&
    typeof candidate.save === 'function' &&
    typeof candidate.delete === 'function'
    ? undefined
    : `must be a SnapshotStore (load, save, delete), got ${describeValue(value)}`;
};

export const snapshotEveryKind: OptionKind = (value) =>
  typeof value === 'function' || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1)
    ? undefined
    : `must be an integer >= 1 or a function, got ${describeValue(value)}`;

const spec: OptionSpecOf<CommandSnapshots<unknown>> = {
  store: snapshotStoreKind,
  version: snapshotVersionKind,
  every: snapshotEveryKind,
  name: 'non-empty-string',
  toSnapshot: 'function',
  fromSnapshot: 'function',
  onError: 'function',
};

const where = 'handleCommand options.snapshots';
const identity = <T>(value: unknown) => value as T;

/** Whether JSON brings `value` back as it is: not an instance of a class. */
export const isJsonShaped = (value: unknown) =>
  typeof value !== 'object' || value === null || Array.isArray(value) || isPlainObject(value);

export const instanceName = (value: unknown) => {
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? `a ${name} instance` : describeValue(value);
};

/**
 * A state JSON cannot bring back (an instance of a class) needs `toSnapshot`
 * and `fromSnapshot`: a `ValidationError` at `<where>.toSnapshot` (or
 * `fromSnapshot`) when one is missing.
 */
export function checkSnapshotConversions(
  options: { toSnapshot?: unknown; fromSnapshot?: unknown },
  initialState: () => unknown,
  where: string,
  owner: 'decider' | 'workflow',
): void {
  if (options.toSnapshot !== undefined && options.fromSnapshot !== undefined) return;
  const sample = initialState();
  if (isJsonShaped(sample)) return;
  throw new ValidationError({
    path: `${where}.${options.toSnapshot === undefined ? 'toSnapshot' : 'fromSnapshot'}`,
    message: `is required: the ${owner}'s state is ${instanceName(sample)}, which JSON cannot bring back (give toSnapshot and fromSnapshot)`,
  });
}

/**
 * Checks the `snapshots` option. A decider whose state is an instance of a
 * class (e.g. an `aggregateDecider`) must say how it becomes JSON and back:
 * copying its fields would lose its methods and private fields.
 */
export function resolveSnapshots<State, E extends Event>(
  given: CommandSnapshots<State, E>,
  initialState: () => State,
): ResolvedSnapshots<State, E> {
  const options = checkOptions(given, spec, where, { required: ['store', 'version', 'onError'], optional: false });
  checkSnapshotConversions(options, initialState, where, 'decider');
  const name = options.name ?? DEFAULT_SNAPSHOT_NAME;
  return {
    store: options.store,
    version: options.version,
    every: options.every,
    name,
    toSnapshot: options.toSnapshot ?? identity,
    fromSnapshot: options.fromSnapshot ?? identity<State>,
    report: (error, streamId, operation) => {
      try {
        options.onError(error, { streamId, name, operation });
      } catch {
        // The hook's own failure must not fail the command or go unhandled.
      }
    },
  };
}
