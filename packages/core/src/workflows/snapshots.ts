import { continues } from '../commands/load-state.ts';
import {
  checkSnapshotConversions,
  type SnapshotErrorContext,
  type SnapshotPolicyContext,
  snapshotEveryKind,
  snapshotStoreKind,
} from '../commands/snapshot-options.ts';
import { isStorageError, isStoreClosedError, isTimeoutError, ValidationError } from '../errors/index.ts';
import { type Logger, log } from '../logging/logger.ts';
import { checkOptions, describeValue, type OptionSpecOf } from '../options/check-options.ts';
import { snapshotVersionKind } from '../snapshots/prepare.ts';
import type { Snapshot, SnapshotStore } from '../snapshots/types.ts';
import type { AppendResult, Event, EventStore } from '../store/types.ts';
import { currentRecords, inputRegistryOf } from './input-schema.ts';
import { applyRecords, type InstanceStatus, loadInstance, type WorkflowInstance } from './instance.ts';
import { type InputRecordData, type ParkedRecordData, workflowEventTypes } from './records.ts';
import type { Workflow } from './types.ts';

/** The name a workflow's instance snapshots are kept under, unless `snapshots.name` says otherwise. */
export const WORKFLOW_SNAPSHOT_NAME = 'workflow';

/**
 * The workflow handler's `snapshots` option: each instance is loaded from its
 * latest snapshot and only the events after it, instead of its whole stream.
 * Names and meanings follow `handleCommand`'s `snapshots` option.
 */
export interface WorkflowSnapshots<State = unknown> {
  store: SnapshotStore;
  /**
   * The version of the snapshot's shape. Bump it when `evolve` or the state
   * changes: snapshots of another version are ignored (never upcast), the
   * instance is folded from its events and the next snapshot replaces them.
   */
  version: number;
  /**
   * When to write a snapshot after an input was recorded. A number N: when
   * the instance's stream crossed a multiple of N since the snapshot it was
   * loaded from. A function: when it returns true (it sees the state after
   * the input). Default: never (snapshots are only read).
   */
  every?: number | ((context: SnapshotPolicyContext<State>) => boolean);
  /** The snapshot's name in the store. Default `'workflow'`. */
  name?: string;
  /** The state as JSON data. Default: the state itself. Required for a class instance. */
  toSnapshot?: (state: State) => unknown;
  /** The state back from that JSON data. Default: the data itself. Required for a class instance. */
  fromSnapshot?: (data: unknown) => State;
  /**
   * Told of every snapshot failure (also logged at `warn` through the
   * handler's `logger`). A snapshot never fails an input: one of the two
   * must be given, so that a failure shows somewhere.
   */
  onError?: (error: unknown, context: SnapshotErrorContext) => void;
}

/** The `snapshots` option checked, with its defaults filled in. */
export interface ResolvedWorkflowSnapshots<State> {
  store: SnapshotStore;
  version: number;
  every: WorkflowSnapshots<State>['every'];
  name: string;
  toSnapshot: (state: State) => unknown;
  fromSnapshot: (data: unknown) => State;
  report: (error: unknown, streamId: string, operation: SnapshotErrorContext['operation']) => void;
}

/** What a snapshot of an instance holds: everything its fold builds. */
export interface InstanceSnapshotData {
  /** The state, through `toSnapshot`. */
  state: unknown;
  status: InstanceStatus;
  /** Every input id the instance has seen, in the order seen: the duplicate check needs them all. */
  seen: string[];
  /**
   * Its pending timers as [token, timer id] pairs: a timer fired after its cancel or replacement is
   * dropped by them. A snapshot without them (written before they were kept) is not used: the
   * instance is folded from its events, and the next snapshot has them.
   */
  timers: [string, string][];
  /** While parked: the failed input, the inputs kept since, and when it parked (epoch ms). */
  parked?: { record: ParkedRecordData; pending: InputRecordData[]; at: number };
}

const where = 'createWorkflowHandler options.snapshots';

const spec: OptionSpecOf<WorkflowSnapshots> = {
  store: snapshotStoreKind,
  version: snapshotVersionKind,
  every: snapshotEveryKind,
  name: 'non-empty-string',
  toSnapshot: 'function',
  fromSnapshot: 'function',
  onError: 'function',
};

const identity = <T>(value: unknown) => value as T;

/**
 * Checks the `snapshots` option. A workflow whose state is an instance of a
 * class must say how it becomes JSON and back; a failure must have somewhere
 * to go (`onError` or the handler's `logger`).
 */
export function resolveWorkflowSnapshots<State>(
  given: WorkflowSnapshots<State>,
  initialState: () => State,
  logger: Logger | undefined,
): ResolvedWorkflowSnapshots<State> {
  const options = checkOptions(given, spec, where, { required: ['store', 'version'], optional: false });
  if (options.onError === undefined && logger === undefined) {
    throw new ValidationError({
      path: `${where}.onError`,
      message:
        'is required when the handler has no logger: a snapshot failure never fails an input, so it must be told',
    });
  }
  checkSnapshotConversions(options, initialState, where, 'workflow');
  const name = options.name ?? WORKFLOW_SNAPSHOT_NAME;
  const onError = options.onError;
  return {
    store: options.store,
    version: options.version,
    every: options.every,
    name,
    toSnapshot: options.toSnapshot ?? identity,
    fromSnapshot: options.fromSnapshot ?? identity<State>,
    report: (error, streamId, operation) => {
      log(logger, 'warn', { streamId, snapshot: name, operation, err: error }, 'workflow snapshot failed');
      if (onError === undefined) return;
      try {
        onError(error, { streamId, name, operation });
      } catch (hookError) {
        // The hook's own failure must not fail the input: it is logged.
        log(logger, 'error', { hook: 'snapshots.onError', err: hookError }, 'workflow hook failed');
      }
    },
  };
}

/** An instance as loaded, with the stream version of the snapshot it was built on (0 when none). */
export interface LoadedInstance<State> {
  instance: WorkflowInstance<State>;
  base: number;
}

const statuses: readonly InstanceStatus[] = ['active', 'completed', 'cancelled', 'parked'];

const isTimerPair = (pair: unknown) =>
  Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string';

/**
 * The instance a snapshot holds; a snapshot not of this shape is a `ValidationError`. Undefined for a
 * snapshot written before the pending timers were kept: not a failure, the instance is folded from its events.
 */
function restoreInstance<State>(
  streamId: string,
  snapshot: Snapshot,
  snapshots: ResolvedWorkflowSnapshots<State>,
): WorkflowInstance<State> | undefined {
  const data = snapshot.state as Partial<InstanceSnapshotData> | null;
  const bad = (path: string, value: unknown) =>
    new ValidationError({
      path: `snapshot.state.${path}`,
      message: `is not an instance snapshot's, got ${describeValue(value)}`,
    });
  if (typeof data !== 'object' || data === null) throw bad('', data);
  if (!statuses.includes(data.status as InstanceStatus)) throw bad('status', data.status);
  if (!Array.isArray(data.seen) || !data.seen.every((id) => typeof id === 'string')) throw bad('seen', data.seen);
  if (data.timers === undefined) return undefined;
  if (!Array.isArray(data.timers) || !data.timers.every(isTimerPair)) throw bad('timers', data.timers);
  const parked = data.parked;
  if ((data.status === 'parked') !== (parked !== undefined)) throw bad('parked', parked);
  if (parked !== undefined && (!Array.isArray(parked.pending) || typeof parked.at !== 'number')) {
    throw bad('parked', parked);
  }
  const instance: WorkflowInstance<State> = {
    streamId,
    version: snapshot.version,
    state: snapshots.fromSnapshot(data.state),
    status: data.status as InstanceStatus,
    seen: new Set(data.seen),
    timers: new Map(data.timers),
  };
  if (parked !== undefined)
    instance.parked = { record: parked.record, pending: parked.pending, at: new Date(parked.at) };
  return instance;
}

/**
 * Loads an instance, its recorded inputs brought to their current versions by
 * the store's registry (see `loadInstance`; a snapshot holds the state they
 * folded to). Without snapshots it folds the whole stream. With them:
 * the instance's latest snapshot of the configured version, checked against
 * the stream (the event at its version must still be the one it covers),
 * then only the events after it. A snapshot of another version is ignored;
 * one the stream does not continue is deleted; a snapshot store that fails,
 * or a snapshot of another shape, is reported; one without the pending
 * timers (an older shape) is passed over. Each falls back to the full fold.
 */
export async function loadWorkflowInstance<State, In extends Event, Out extends Event>(
  store: EventStore,
  workflow: Workflow<State, In, Out>,
  streamId: string,
  snapshots: ResolvedWorkflowSnapshots<State> | undefined,
): Promise<LoadedInstance<State>> {
  try {
    return await loadFolded(store, workflow, streamId, snapshots);
  } catch (error) {
    if (isStorageError(error) || isStoreClosedError(error) || isTimeoutError(error)) throw error;
    // An instance that cannot be folded (an input its registry cannot upcast, a record the fold cannot read, an
    // evolve that throws) but has ended (cancelled by hand, say) is ended: its later inputs and timers are dropped.
    const ended = await endedInstance(store, workflow, streamId);
    if (ended === undefined) throw error;
    return { instance: ended, base: 0 };
  }
}

/** The instance as its records' types alone tell it, when one of them ends it; else undefined. */
async function endedInstance<State>(
  store: EventStore,
  workflow: { initialState(): State },
  streamId: string,
): Promise<WorkflowInstance<State> | undefined> {
  const { events, version } = await store.readStream(streamId);
  let status: InstanceStatus | undefined;
  for (const event of events) {
    if (event.type === workflowEventTypes.completed) status = 'completed';
    else if (event.type === workflowEventTypes.cancelled) status = 'cancelled';
  }
  if (status === undefined) return undefined;
  return { streamId, version, state: workflow.initialState(), status, seen: new Set(), timers: new Map() };
}

async function loadFolded<State, In extends Event, Out extends Event>(
  store: EventStore,
  workflow: Workflow<State, In, Out>,
  streamId: string,
  snapshots: ResolvedWorkflowSnapshots<State> | undefined,
): Promise<LoadedInstance<State>> {
  if (snapshots !== undefined) {
    let snapshot: Snapshot | undefined;
    try {
      snapshot = await snapshots.store.load(streamId, { name: snapshots.name });
    } catch (error) {
      snapshots.report(error, streamId, 'load');
    }
    if (snapshot !== undefined && snapshot.snapshotVersion === snapshots.version) {
      const tail = await store.readStream(streamId, { from: snapshot.version });
      if (continues(snapshot, tail, (error) => snapshots.report(error, streamId, 'load'))) {
        let instance: WorkflowInstance<State> | undefined;
        try {
          instance = restoreInstance(streamId, snapshot, snapshots);
        } catch (error) {
          snapshots.report(error, streamId, 'load');
        }
        if (instance !== undefined) {
          const newer = tail.events[0]?.streamVersion === snapshot.version ? tail.events.slice(1) : tail.events;
          applyRecords(workflow, instance, await currentRecords(inputRegistryOf(store), streamId, newer));
          instance.version = tail.version;
          return { instance, base: snapshot.version };
        }
      } else {
        // Left in place, it would refuse every newer save until the new stream outgrew it.
        try {
          await snapshots.store.delete(streamId, { name: snapshots.name });
        } catch (error) {
          snapshots.report(error, streamId, 'delete');
        }
      }
    }
  }
  return { instance: await loadInstance(store, workflow, streamId), base: 0 };
}

/** Whether the policy asks for a snapshot, given the instance after the append. */
function due<State>(
  every: NonNullable<WorkflowSnapshots<State>['every']>,
  instance: WorkflowInstance<State>,
  base: number,
  appended: AppendResult,
): boolean {
  if (typeof every === 'number') return Math.floor(appended.version / every) > Math.floor(base / every);
  return Boolean(
    every({
      state: instance.state,
      version: appended.version,
      newEvents: appended.events,
      eventsSinceSnapshot: appended.version - base,
    }),
  );
}

/**
 * Runs after an append to the instance committed (outside its transaction):
 * folds the appended events into `loaded.instance` (changed in place) and,
 * when the policy says so, saves the instance. Resolves whether a snapshot
 * was stored; never rejects: every failure is reported (the input stands).
 */
export async function snapshotAfterAppend<State, In extends Event, Out extends Event>(
  snapshots: ResolvedWorkflowSnapshots<State> | undefined,
  workflow: Workflow<State, In, Out>,
  loaded: LoadedInstance<State>,
  appended: AppendResult,
): Promise<boolean> {
  const last = appended.events[appended.events.length - 1];
  if (snapshots?.every === undefined || last === undefined) return false;
  const { every } = snapshots;
  const { instance, base } = loaded;
  // A number policy is answered before folding: most inputs need no snapshot.
  if (typeof every === 'number' && !due(every, instance, base, appended)) return false;
  try {
    applyRecords(workflow, instance, appended.events);
    instance.version = appended.version;
  } catch (error) {
    snapshots.report(error, instance.streamId, 'save');
    return false;
  }
  try {
    if (typeof every === 'function' && !due(every, instance, base, appended)) return false;
  } catch (error) {
    snapshots.report(error, instance.streamId, 'policy');
    return false;
  }
  try {
    const data: InstanceSnapshotData = {
      state: snapshots.toSnapshot(instance.state),
      status: instance.status,
      seen: [...instance.seen],
      timers: [...instance.timers],
    };
    if (instance.parked) {
      const { record, pending, at } = instance.parked;
      data.parked = { record, pending, at: at.getTime() };
    }
    return await snapshots.store.save({
      streamId: instance.streamId,
      name: snapshots.name,
      version: appended.version,
      lastEventId: last.id,
      snapshotVersion: snapshots.version,
      state: data,
    });
  } catch (error) {
    snapshots.report(error, instance.streamId, 'save');
    return false;
  }
}
