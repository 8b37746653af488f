import {
  isConcurrencyError,
  isEventIdConflictError,
  isStorageError,
  isStoreClosedError,
  isTimeoutError,
  WorkflowError,
} from '../errors/index.ts';
import type { Event, EventToAppend, RecordedEvent } from '../store/types.ts';
import { derivedId } from './derived-id.ts';
import { type ResolvedHandlerOptions, reportParked } from './handler-options.ts';
import { currentRecordedInput } from './input-schema.ts';
import { instanceStreamId } from './instance.ts';
import {
  decisionEvents,
  describeError,
  encodeOutputMessages,
  type InputRecordData,
  outputList,
  type ParkedRecordData,
  parkedState,
  recordMetadata,
  workflowEventTypes as T,
} from './records.ts';
import { loadWorkflowInstance, snapshotAfterAppend } from './snapshots.ts';
import type { Workflow, WorkflowInput, WorkflowInputOf, WorkflowOutput } from './types.ts';

/** A parked instance, as `list` shows it. */
export interface ParkedInstance {
  streamId: string;
  instanceId: string;
  /** The input `decide` failed on, the error, and the state it was given. */
  input: ParkedRecordData['input']['message'];
  error: ParkedRecordData['error'];
  /** The state (through `toSnapshot` where JSON cannot carry it as it is; `null` when left out). */
  state: unknown;
  /** Why the state was left out, when it was. */
  stateOmitted?: string;
  /** Inputs received since, kept for the retry, in order. */
  pending: number;
  parkedAt: Date;
  /**
   * Set when the instance cannot be loaded (a recorded input its registry
   * cannot upcast, a record its fold fails on): why, as the load failed. The
   * other fields are then as its parked record holds them (`input` as
   * recorded, not upcast), and `retry` fails the same way until the cause is
   * fixed (a release with a fixed upcaster); `cancel` still ends it.
   */
  unreadable?: ParkedRecordData['error'];
}

/** What `retry` did: `'resumed'` (every kept input recorded) or `'parked'` again (an input failed again). */
export type RetryOutcome = 'resumed' | 'parked';

export interface ParkedInstances {
  /**
   * Every instance of the workflow parked now, oldest park first. One that
   * cannot be loaded is listed from its parked record, with `unreadable`
   * saying why; a failure of the store itself (an outage) rejects.
   */
  list(): Promise<ParkedInstance[]>;
  /**
   * Decides again the input the instance failed on, then the inputs kept
   * since, in order, and records them with their outputs in one append. A
   * retryable failure rejects (nothing recorded); a terminal one parks it again
   * (and `onParked` is told, as for the first park).
   */
  retry(instanceId: string): Promise<RetryOutcome>;
  /** Ends the instance (parked or active): its timers are dropped, later inputs ignored. */
  cancel(instanceId: string, reason?: string): Promise<void>;
}

export function createParkedInstances<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  options: ResolvedHandlerOptions<State>,
): ParkedInstances {
  const { store, snapshots } = options;
  const load = async (instanceId: string) => {
    const streamId = instanceStreamId(workflow, instanceId);
    const loaded = await loadWorkflowInstance(store, workflow, streamId, snapshots);
    if (loaded.instance.version === 0) throw new WorkflowError(streamId, 'no such instance');
    return loaded;
  };
  /**
   * Cancels an instance that cannot be loaded, nothing folded: one that has ended loads as ended
   * (`loadWorkflowInstance`), so this one has not (the append's expected version holds that). Its
   * version is read without its events: a row the store cannot decode fails every read of them.
   */
  const cancelUnloaded = async (streamId: string, data: { reason?: string }) => {
    const info = await store.streamInfo(streamId);
    if (!info?.exists || info.version === 0) throw new WorkflowError(streamId, 'no such instance');
    const { version } = info;
    const id = derivedId(streamId, 'cancelled', String(version));
    await store.append(streamId, [{ id, type: T.cancelled, data }], { expectedVersion: version });
  };
  const withConflicts = async <T>(attempt: () => Promise<T>): Promise<T> => {
    for (let conflicts = 1; ; conflicts++) {
      try {
        return await attempt();
      } catch (error) {
        const conflict = isConcurrencyError(error) || isEventIdConflictError(error);
        if (!conflict || conflicts >= options.maxConflicts) throw error;
      }
    }
  };

  return {
    async list() {
      /** Per instance: its last park, resume or cancel, and the inputs kept since a park. */
      const latest = new Map<string, { event: RecordedEvent; kept: number }>();
      for await (const event of store.readAll({
        categories: [workflow.name],
        types: [T.parked, T.resumed, T.cancelled, T.deferred],
      })) {
        const seen = latest.get(event.streamId);
        if (event.type !== T.deferred) latest.set(event.streamId, { event, kept: 0 });
        else if (seen) seen.kept++;
      }
      const parked: ParkedInstance[] = [];
      for (const [streamId, { event, kept }] of latest) {
        if (event.type !== T.parked) continue;
        let loaded: Awaited<ReturnType<typeof loadWorkflowInstance<State, In, Out>>>;
        try {
          loaded = await loadWorkflowInstance(store, workflow, streamId, snapshots);
        } catch (error) {
          // The store failing is no instance's fault: the listing fails as a read does.
          if (isStorageError(error) || isStoreClosedError(error) || isTimeoutError(error)) throw error;
          parked.push(unreadableEntry(workflow.name, event, kept, error));
          continue;
        }
        const { instance } = loaded;
        if (!instance.parked) continue;
        const { record, pending, at } = instance.parked;
        parked.push({
          streamId,
          instanceId: streamId.slice(workflow.name.length + 1),
          input: record.input.message,
          error: record.error,
          state: record.state,
          ...(record.stateOmitted === undefined ? {} : { stateOmitted: record.stateOmitted }),
          pending: pending.length,
          parkedAt: at,
        });
      }
      return parked.sort((a, b) => a.parkedAt.getTime() - b.parkedAt.getTime());
    },

    retry: (instanceId) =>
      withConflicts(async () => {
        const loaded = await load(instanceId);
        const { instance } = loaded;
        if (!instance.parked) throw new WorkflowError(instance.streamId, `is ${instance.status}, not parked`);
        const { streamId, version } = instance;
        const salt = String(version);
        // Decided at their current versions, as when they arrived: a record that cannot be read fails the retry.
        const kept: InputRecordData[] = [];
        for (const record of [instance.parked.record.input, ...instance.parked.pending]) {
          kept.push(await currentRecordedInput(options.schemas, streamId, record));
        }
        const events: EventToAppend[] = [{ id: derivedId(streamId, 'resumed', salt), type: T.resumed, data: {} }];
        // Decided on a state of its own: an `evolve` that changes its state in place (a class's `apply`) would
        // otherwise change `loaded`, which the snapshot after the append folds the new records into again. A
        // record appended between the two loads makes the append below conflict, and the retry starts over.
        let state = (await load(instanceId)).instance.state;
        let outcome: RetryOutcome = 'resumed';
        let failure: { error: unknown; input: WorkflowInput } | undefined;
        /** Tokens a decision of this retry scheduled again or cancelled: a kept firing of their earlier timer is dropped. */
        const retimed = new Set<string>();
        for (const [i, record] of kept.entries()) {
          // As for a live firing: a timer cancelled or replaced before it is decided is never delivered,
          // nor kept again behind an input the retry parks on (a later retry would deliver it).
          if (record.timer && retimed.has(record.timer.token)) continue;
          if (outcome === 'parked') {
            events.push(keptEvent(streamId, record, T.deferred, salt));
            continue;
          }
          let outputs: WorkflowOutput[];
          let decided: EventToAppend[];
          try {
            const given = outputList(workflow.decide(record.message as WorkflowInputOf<In>, state));
            outputs = await encodeOutputMessages(given, options.schemas);
            // A decision that cannot be recorded (a send the relay could not publish, a bad schedule) fails as decide would.
            decided = decisionEvents(streamId, record, outputs, options.now(), {
              salt: `${salt}:${i}`,
              schemas: options.schemas,
            });
          } catch (error) {
            if (!options.isTerminal(error)) throw error;
            events.push({
              id: derivedId(streamId, record.message.id, 'parked', salt),
              type: T.parked,
              data: { input: record, error: describeError(error), ...parkedState(state, snapshots?.toSnapshot) },
              metadata: recordMetadata(record.message),
            });
            outcome = 'parked';
            failure = { error, input: record.message as WorkflowInput };
            continue;
          }
          events.push(...decided);
          for (const output of outputs) {
            if (output.kind === 'schedule' || output.kind === 'cancel') retimed.add(output.token);
          }
          state = evolveDecision(workflow, state, record, outputs);
          if (outputs.some((output) => output.kind === 'complete')) break;
        }
        const appended = await store.append(streamId, events, { expectedVersion: version });
        await snapshotAfterAppend(snapshots, workflow, loaded, appended);
        if (failure) reportParked(options, streamId, failure.error, failure.input);
        return outcome;
      }),

    cancel: (instanceId, reason) =>
      withConflicts(async () => {
        const data = reason === undefined ? {} : { reason };
        let loaded: Awaited<ReturnType<typeof load>>;
        try {
          loaded = await load(instanceId);
        } catch (error) {
          // A store that may answer later (busy, offline, closed) is no reason to give the instance up blind.
          if ((isStorageError(error) && error.retryable) || isStoreClosedError(error) || isTimeoutError(error)) {
            throw error;
          }
          // An instance that cannot be loaded (an input its registry cannot upcast, a record the fold cannot read,
          // a row the store cannot decode, an evolve that throws) is given up unread: nothing of it is decided any more.
          return cancelUnloaded(instanceStreamId(workflow, instanceId), data);
        }
        const { instance } = loaded;
        if (instance.status === 'completed' || instance.status === 'cancelled') {
          throw new WorkflowError(instance.streamId, `is ${instance.status} already`);
        }
        const id = derivedId(instance.streamId, 'cancelled', String(instance.version));
        const appended = await store.append(instance.streamId, [{ id, type: T.cancelled, data }], {
          expectedVersion: instance.version,
        });
        await snapshotAfterAppend(snapshots, workflow, loaded, appended);
      }),
  };
}

/** A parked instance that cannot be loaded, as its parked record (read as stored) tells it, with why. */
function unreadableEntry(workflowName: string, event: RecordedEvent, kept: number, error: unknown): ParkedInstance {
  const record = (event.data ?? {}) as Partial<ParkedRecordData>;
  return {
    streamId: event.streamId,
    instanceId: event.streamId.slice(workflowName.length + 1),
    input: record.input?.message as ParkedInstance['input'],
    error: record.error ?? { name: 'Error', message: 'the parked record holds no error' },
    state: record.state ?? null,
    ...(record.stateOmitted === undefined ? {} : { stateOmitted: record.stateOmitted }),
    pending: kept,
    parkedAt: event.recordedAt,
    unreadable: describeError(error),
  };
}

function keptEvent(streamId: string, record: InputRecordData, type: string, salt: string): EventToAppend {
  const id = derivedId(streamId, record.message.id, type, salt);
  return { id, type, data: record, metadata: recordMetadata(record.message) };
}

/** The state after one input and the messages it sent, as the instance's fold will compute it. */
function evolveDecision<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  state: State,
  record: InputRecordData,
  outputs: readonly WorkflowOutput[],
): State {
  let next = workflow.evolve(state, { kind: 'input', message: record.message as WorkflowInputOf<In> });
  for (const output of outputs) {
    if (output.kind === 'send') next = workflow.evolve(next, { kind: 'sent', message: output.message as Out });
  }
  return next;
}
