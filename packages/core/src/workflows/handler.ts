import { isConcurrencyError, isEventIdConflictError, isStreamDeletedError, ValidationError } from '../errors/index.ts';
import { log } from '../logging/logger.ts';
import type { Event } from '../store/types.ts';
import { derivedId } from './derived-id.ts';
import {
  callHook,
  type ResolvedHandlerOptions,
  reportParked,
  resolveHandlerOptions,
  type WorkflowHandlerOptions,
} from './handler-options.ts';
import { currentInput, receivedSchema } from './input-schema.ts';
import { instanceStreamId } from './instance.ts';
import { createParkedInstances, type ParkedInstances } from './parked.ts';
import {
  decisionEvents,
  describeError,
  encodeOutputMessages,
  type InputRecordData,
  outputList,
  parkedState,
  recordMetadata,
  workflowEventTypes as T,
} from './records.ts';
import { type LoadedInstance, loadWorkflowInstance, snapshotAfterAppend } from './snapshots.ts';
import type { PendingTimer } from './timers/types.ts';
import type { Workflow, WorkflowInput, WorkflowInputOf } from './types.ts';

/**
 * What became of one input: `'recorded'` (decided and recorded with its
 * outputs), `'duplicate'` (recorded before), `'not-found'`, `'ignored'` (not
 * one of the workflow's inputs), `'after-end'` (the instance had completed or
 * was cancelled), `'parked'` (decide failed terminally), `'deferred'` (kept
 * for when the parked instance is retried), `'timer-dropped'`.
 */
export type WorkflowOutcome =
  | 'recorded'
  | 'duplicate'
  | 'not-found'
  | 'ignored'
  | 'after-end'
  | 'parked'
  | 'deferred'
  | 'timer-dropped';

export type WorkflowStats = Record<WorkflowOutcome, number>;

/** What became of one timer of a batch (`fireTimers`): its outcome, or the error that kept it pending. */
export type TimerFiring =
  | { timer: PendingTimer; outcome: WorkflowOutcome; error?: undefined }
  | { timer: PendingTimer; outcome?: undefined; error: unknown };

export interface WorkflowHandler {
  readonly workflow: Workflow<unknown>;
  /** The input types it takes: subscribe its consumer to the topics carrying them. */
  readonly inputs: readonly string[];
  /**
   * Routes a message to its instance and records it there with what `decide`
   * made of it, in one append. Usable as a consumer's handler: a retryable
   * failure rejects (the consumer's retry policy applies), a terminal one
   * parks the instance and resolves. On a store with a schema registry the
   * message is first upcast to its type's current version, as a consumer
   * with `schemas` decodes it.
   */
  handle(message: WorkflowInput): Promise<WorkflowOutcome>;
  /** Records a due timer as an input of its instance (the timer poller calls it). */
  fireTimer(timer: PendingTimer): Promise<WorkflowOutcome>;
  /**
   * Records many due timers at once (the timer poller calls it): their
   * instances are read together and their appends are handed to the store
   * together, so its group commit writes them in one transaction, each
   * append checked on its own. One timer per instance goes in that first pass; an
   * instance's other timers, and each timer whose append conflicted or
   * failed, are then recorded alone (`fireTimer`). Never rejects: each
   * timer's outcome or error, in the order given.
   */
  fireTimers(timers: readonly PendingTimer[]): Promise<TimerFiring[]>;
  /** Counts since the handler was created. */
  stats(): WorkflowStats;
  /** Parked instances: list, retry, cancel. */
  readonly parked: ParkedInstances;
}

/**
 * The runtime of one workflow over an event store: each instance is the
 * stream `<name>-<instanceId>`, recording what it received and decided. Hand
 * `handle` to a consumer, run `startWorkflowTimers` for its timers, and
 * publish its sent messages with `defineWorkflowRelay`.
 *
 * @example
 * const checkoutHandler = createWorkflowHandler(checkout, { store });
 * createConsumer({ name: 'checkout', topic: 'orders', transport, handler: (m) => checkoutHandler.handle(m) });
 * // Long-lived instances: load from a snapshot and the events after it.
 * createWorkflowHandler(checkout, { store, logger, snapshots: { store: snapshots, version: 1, every: 100 } });
 */
export function createWorkflowHandler<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  given: WorkflowHandlerOptions<NoInfer<State>>,
): WorkflowHandler {
  const options = resolveHandlerOptions(given, workflow.initialState);
  const stats: WorkflowStats = {
    recorded: 0,
    duplicate: 0,
    'not-found': 0,
    ignored: 0,
    'after-end': 0,
    parked: 0,
    deferred: 0,
    'timer-dropped': 0,
  };
  const counted = (outcome: WorkflowOutcome) => {
    stats[outcome]++;
    return outcome;
  };

  const handle = async (message: WorkflowInput): Promise<WorkflowOutcome> => {
    if (typeof message?.id !== 'string' || message.id.length === 0 || typeof message.type !== 'string') {
      throw new ValidationError({ path: 'message', message: 'a workflow input needs a string id and type' });
    }
    if (!workflow.inputs.includes(message.type)) return counted('ignored');
    // At its type's current version, as a consumer decoding by the registry hands it on: decided and recorded so.
    const data = await currentInput(options.schemas, { message: inputOf(message), schema: receivedSchema(message) });
    const input = data.message;
    const instanceId = workflow.correlate(input as WorkflowInputOf<In>);
    if (typeof instanceId !== 'string' || instanceId.length === 0) return counted(notFound(input, undefined));
    const streamId = instanceStreamId(workflow, instanceId);
    const mayStart = workflow.start.includes(input.type);
    return counted(await record(workflow, options, streamId, data, mayStart, notFound));
  };

  /** A due timer as its instance's input, at its type's current version (upcast from the version it was scheduled at). */
  const firedRecord = (timer: PendingTimer) => currentInput(options.schemas, firedInput(timer));

  const notFound = (input: WorkflowInput, instanceId: string | undefined): WorkflowOutcome => {
    const hook = options.onNotFound;
    if (hook) callHook(options.logger, 'onNotFound', () => hook(input, instanceId));
    return 'not-found';
  };

  /** A fired timer's outcome: the end (or absence) of its instance, or its cancel or replacement, drops it. */
  const timerOutcome = (timer: PendingTimer, outcome: WorkflowOutcome): WorkflowOutcome => {
    if (outcome === 'after-end' || outcome === 'not-found' || outcome === 'timer-dropped') {
      log(options.logger, 'info', { streamId: timer.streamId, timerId: timer.timerId }, 'timer dropped');
      return counted('timer-dropped');
    }
    return counted(outcome);
  };

  const fireTimer = async (timer: PendingTimer): Promise<WorkflowOutcome> => {
    let outcome: WorkflowOutcome;
    try {
      outcome = await record(workflow, options, timer.streamId, await firedRecord(timer), false, () => 'not-found');
    } catch (error) {
      // Its instance was deleted for good: the timer has nowhere to go, and would fail at every look.
      if (!isStreamDeletedError(error)) throw error;
      outcome = 'not-found';
    }
    return timerOutcome(timer, outcome);
  };

  const fireTimers = async (due: readonly PendingTimer[]): Promise<TimerFiring[]> => {
    const firings: (TimerFiring | undefined)[] = due.map(() => undefined);
    const streams = new Set<string>();
    const first: number[] = [];
    due.forEach((timer, i) => {
      if (streams.has(timer.streamId)) return;
      streams.add(timer.streamId);
      first.push(i);
    });
    // First pass: one timer per instance, read together, appended together (one group commit).
    await Promise.all(
      first.map(async (i) => {
        const timer = due[i] as PendingTimer;
        try {
          const loaded = await loadWorkflowInstance(options.store, workflow, timer.streamId, options.snapshots);
          const outcome = await tryRecord(workflow, options, loaded, await firedRecord(timer), false);
          if (outcome !== 'conflict') firings[i] = { timer, outcome: timerOutcome(timer, outcome) };
        } catch (error) {
          if (isStreamDeletedError(error)) {
            firings[i] = { timer, outcome: timerOutcome(timer, 'not-found') };
            return;
          }
          // Left for the second pass, which tries it alone and reports its own error.
          log(
            options.logger,
            'warn',
            { streamId: timer.streamId, timerId: timer.timerId, err: error },
            'timer retried alone',
          );
        }
      }),
    );
    // Second pass: whatever the first left, alone, the timers of one instance in order.
    const rest = new Map<string, number[]>();
    due.forEach((timer, i) => {
      if (firings[i]) return;
      rest.set(timer.streamId, [...(rest.get(timer.streamId) ?? []), i]);
    });
    await Promise.all(
      [...rest.values()].map(async (indexes) => {
        for (const i of indexes) {
          const timer = due[i] as PendingTimer;
          try {
            firings[i] = { timer, outcome: await fireTimer(timer) };
          } catch (error) {
            firings[i] = { timer, error };
          }
        }
      }),
    );
    return firings as TimerFiring[];
  };

  return {
    workflow: workflow as unknown as Workflow<unknown>,
    inputs: workflow.inputs,
    handle,
    fireTimer,
    fireTimers,
    stats: () => ({ ...stats }),
    parked: createParkedInstances(workflow, options),
  };
}

/** A due timer as the input its instance records: its id derived from the timer's, so a double firing collapses. */
function firedInput(timer: PendingTimer): InputRecordData {
  const message: WorkflowInput = {
    id: derivedId(timer.timerId, 'fired'),
    type: timer.message.type,
    data: timer.message.data,
    metadata: { ...timer.metadata, causationId: timer.timerId },
  };
  const fired = { timerId: timer.timerId, token: timer.token, dueAt: timer.dueAt };
  const { schema } = timer.message;
  return schema === undefined ? { message, timer: fired } : { message, timer: fired, schema };
}

/** The input as recorded: only what an instance keeps of a message. */
function inputOf(message: WorkflowInput): WorkflowInput {
  return { id: message.id, type: message.type, data: message.data, metadata: { ...message.metadata } };
}

/**
 * Records one input in its instance: reload, decide, append with the version
 * read; a conflict (a racing input, a racing start) reloads and decides again.
 */
async function record<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  options: ResolvedHandlerOptions<State>,
  streamId: string,
  data: InputRecordData,
  mayStart: boolean,
  notFound: (input: WorkflowInput, instanceId: string | undefined) => WorkflowOutcome,
): Promise<WorkflowOutcome> {
  const { store } = options;
  for (let conflicts = 0; ; conflicts++) {
    const loaded = await loadWorkflowInstance(store, workflow, streamId, options.snapshots);
    const outcome = await tryRecord(workflow, options, loaded, data, mayStart);
    if (outcome === 'not-found') return notFound(data.message, streamId.slice(workflow.name.length + 1));
    if (outcome !== 'conflict') return outcome;
    if (conflicts + 1 >= options.maxConflicts) {
      // Give up to the caller (the consumer retries later): the conflict error says why.
      const last = await loadWorkflowInstance(store, workflow, streamId, options.snapshots);
      return (await tryRecord(workflow, options, last, data, mayStart, true)) as WorkflowOutcome;
    }
  }
}

async function tryRecord<State, In extends Event, Out extends Event>(
  workflow: Workflow<State, In, Out>,
  options: ResolvedHandlerOptions<State>,
  loaded: LoadedInstance<State>,
  data: InputRecordData,
  mayStart: boolean,
  rethrowConflicts = false,
): Promise<WorkflowOutcome | 'conflict'> {
  const { store } = options;
  const { instance } = loaded;
  const { streamId, version } = instance;
  const input = data.message;
  if (instance.seen.has(input.id)) return 'duplicate';
  if (version === 0 && !mayStart) return 'not-found';
  if (instance.status === 'completed' || instance.status === 'cancelled') return 'after-end';
  // A timer read as pending before its cancel or its replacement (a newer schedule of its token) was recorded.
  if (data.timer && instance.timers.get(data.timer.token) !== data.timer.timerId) return 'timer-dropped';
  const metadata = recordMetadata(input);
  let events: Parameters<typeof store.append>[1];
  let outcome: WorkflowOutcome = 'recorded';
  let failure: unknown;
  if (instance.status === 'parked') {
    events = [{ id: derivedId(streamId, input.id, 'deferred', String(version)), type: T.deferred, data, metadata }];
    outcome = 'deferred';
  } else {
    try {
      const decided = outputList(workflow.decide(input as WorkflowInputOf<In>, instance.state));
      const outputs = await encodeOutputMessages(decided, options.schemas);
      events = decisionEvents(streamId, data, outputs, options.now(), { schemas: options.schemas });
    } catch (error) {
      if (!options.isTerminal(error)) throw error;
      events = [parkedEvent(streamId, data, error, instance.state, version, options.snapshots?.toSnapshot)];
      outcome = 'parked';
      failure = error;
    }
  }
  try {
    const appended = await store.append(streamId, events, { expectedVersion: version });
    // A snapshot is a cache: written after the commit, its failure reported, never the input's.
    await snapshotAfterAppend(options.snapshots, workflow, loaded, appended);
    if (outcome === 'parked') reportParked(options, streamId, failure, input);
    return outcome;
  } catch (error) {
    if ((isConcurrencyError(error) || isEventIdConflictError(error)) && !rethrowConflicts) return 'conflict';
    if (outcome === 'recorded' && options.isTerminal(error)) {
      // The decision cannot be recorded (an output JSON cannot carry, too large): park on it.
      const parked = parkedEvent(streamId, data, error, instance.state, version, options.snapshots?.toSnapshot);
      const appended = await store.append(streamId, [parked], {
        expectedVersion: version,
      });
      await snapshotAfterAppend(options.snapshots, workflow, loaded, appended);
      reportParked(options, streamId, error, input);
      return 'parked';
    }
    throw error;
  }
}

export function parkedEvent(
  streamId: string,
  input: InputRecordData,
  error: unknown,
  state: unknown,
  version: number,
  toSnapshot?: (state: never) => unknown,
) {
  return {
    id: derivedId(streamId, input.message.id, 'parked', String(version)),
    type: T.parked,
    data: { input, error: describeError(error), ...parkedState(state, toSnapshot) },
    metadata: recordMetadata(input.message),
  };
}
