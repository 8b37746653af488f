import { WorkflowError } from '../errors/index.ts';
import type { Event, EventStore, RecordedEvent } from '../store/types.ts';
import { currentRecords, inputRegistryOf } from './input-schema.ts';
import {
  type InputRecordData,
  type ParkedRecordData,
  type SentRecordData,
  workflowEventTypes as T,
  type TimerScheduledData,
} from './records.ts';
import type { Workflow, WorkflowInputOf, WorkflowRecord } from './types.ts';

export type InstanceStatus = 'active' | 'completed' | 'cancelled' | 'parked';

/** An instance as its stream tells it. */
export interface WorkflowInstance<State> {
  streamId: string;
  /** The stream's version: 0 when the instance does not exist. */
  version: number;
  state: State;
  status: InstanceStatus;
  /** Ids of every input the instance has seen (handled, parked or deferred). */
  seen: Set<string>;
  /**
   * Its pending timers, token → timer id (the id of the record that scheduled it): a timer fired
   * after its cancel, its replacement or the instance's end was recorded is no longer here.
   */
  timers: Map<string, string>;
  /** While parked: the input it failed on, the error, and the inputs received since, in order. */
  parked?: { record: ParkedRecordData; pending: InputRecordData[]; at: Date };
}

/** The stream id of an instance. */
export const instanceStreamId = (workflow: { name: string }, instanceId: string) => `${workflow.name}-${instanceId}`;

/** Folds an instance's recorded events into its state and status. */
export function foldInstance<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  streamId: string,
  events: readonly RecordedEvent[],
  version: number,
): WorkflowInstance<State> {
  const instance: WorkflowInstance<State> = {
    streamId,
    version,
    state: workflow.initialState(),
    status: 'active',
    seen: new Set(),
    timers: new Map(),
  };
  return applyRecords(workflow, instance, events);
}

/**
 * Folds more of the instance's recorded events into `instance` (changed in
 * place and returned): the events after a snapshot, or those just appended.
 * The version is the caller's to set.
 */
export function applyRecords<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  instance: WorkflowInstance<State>,
  events: readonly RecordedEvent[],
): WorkflowInstance<State> {
  const evolve = (recorded: WorkflowRecord<In, Out>) => {
    instance.state = workflow.evolve(instance.state, recorded);
  };
  /** A fired timer's input was recorded (handled, parked on or deferred): the timer is pending no more. */
  const fired = (timer: InputRecordData['timer']) => {
    if (timer && instance.timers.get(timer.token) === timer.timerId) instance.timers.delete(timer.token);
  };
  for (const event of events) {
    const problem = recordProblem(event);
    if (problem !== undefined) {
      throw new WorkflowError(
        event.streamId,
        `its record #${event.streamVersion} (${event.type}, position ${event.position}) cannot be read: ${problem}`,
      );
    }
    switch (event.type) {
      case T.input: {
        const data = event.data as InputRecordData;
        instance.seen.add(data.message.id);
        fired(data.timer);
        evolve({ kind: 'input', message: data.message as WorkflowInputOf<In> });
        break;
      }
      case T.sent:
        evolve({ kind: 'sent', message: (event.data as SentRecordData).message as Out });
        break;
      case T.timerScheduled:
        // A newer schedule of a token replaces its pending timer.
        instance.timers.set((event.data as TimerScheduledData).token, event.id);
        break;
      case T.timerCancelled:
        instance.timers.delete((event.data as { token: string }).token);
        break;
      case T.completed:
        instance.status = 'completed';
        instance.timers.clear();
        break;
      case T.cancelled:
        instance.status = 'cancelled';
        instance.parked = undefined;
        instance.timers.clear();
        break;
      case T.parked: {
        const record = event.data as ParkedRecordData;
        instance.seen.add(record.input.message.id);
        fired(record.input.timer);
        instance.status = 'parked';
        instance.parked = { record, pending: [], at: event.recordedAt };
        break;
      }
      case T.deferred: {
        const data = event.data as InputRecordData;
        instance.seen.add(data.message.id);
        fired(data.timer);
        instance.parked?.pending.push(data);
        break;
      }
      case T.resumed:
        instance.status = 'active';
        instance.parked = undefined;
        break;
    }
  }
  return instance;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** What the fold needs of a recorded input (`data` of an input or deferral, `input` of a park) that it lacks. */
function inputProblem(value: unknown, path: string): string | undefined {
  if (!isObject(value)) return `${path} is no object`;
  if (!isObject(value.message) || typeof value.message.id !== 'string') return `${path}.message has no id`;
  return undefined;
}

/**
 * Why the fold cannot read a record of one of the instance's types (a shape
 * its type never has: written by a bug, by hand, or corrupted), else
 * undefined. Types the fold does not read are not looked at.
 */
function recordProblem(event: RecordedEvent): string | undefined {
  const data = event.data as unknown;
  switch (event.type) {
    case T.input:
    case T.deferred:
      return inputProblem(data, 'data');
    case T.parked:
      return isObject(data) ? inputProblem(data.input, 'data.input') : 'data is no object';
    case T.sent:
      return isObject(data) && isObject(data.message) ? undefined : 'data.message is no object';
    case T.timerScheduled:
    case T.timerCancelled:
      return isObject(data) && typeof data.token === 'string' ? undefined : 'data.token is no string';
    default:
      return undefined;
  }
}

/**
 * Reads and folds an instance. On a store with a schema registry, `evolve`
 * gets every recorded input at its current version; one that cannot be
 * decoded fails the load with a `WorkflowError` naming it (its `cause` the
 * registry's error).
 *
 * @example
 * const { state, status } = await loadInstance(store, checkout, instanceStreamId(checkout, 'o-1'));
 */
export async function loadInstance<State, In extends Event, Out extends Event>(
  store: EventStore,
  workflow: Workflow<State, In, Out>,
  streamId: string,
): Promise<WorkflowInstance<State>> {
  const { events, version } = await store.readStream(streamId);
  return foldInstance(workflow, streamId, await currentRecords(inputRegistryOf(store), streamId, events), version);
}
