import { workflowEventTypes as T } from '@factline/core';
import { describeValue, timerChanges } from '@factline/core/adapter';
import { notJsonProblem, type StoredEvent } from '../inspect/inspector.ts';

/** An instance's state as its stream tells it: `running` until it completes, parks or is cancelled. */
export type InstanceState = 'running' | 'parked' | 'completed' | 'cancelled';

export const instanceStates: readonly InstanceState[] = ['running', 'parked', 'completed', 'cancelled'];

/** A timer the instance has pending: scheduled, not yet fired, cancelled or ended with its instance. */
export interface PendingTimerView {
  token: string;
  dueAt: Date;
  /** The type of the input it will deliver. */
  messageType: string;
}

/**
 * How long past its due time a pending timer counts as overdue. A timer
 * runner fires a due timer within its `pollMs` (100 ms by default) and one
 * whose firing fails again within 5 s: a timer a minute late is one no
 * runner fires (none runs for the workflow, or it was recorded by a store
 * opened without the timer projection, so it never reached the timer table).
 */
export const overdueAfterMs = 60_000;

/** Whether `timer` is overdue at `now` (ms since the epoch): pending more than `overdueAfterMs` past its due time. */
export const isOverdue = (timer: PendingTimerView, now: number) => timer.dueAt.getTime() <= now - overdueAfterMs;

/** A duration past, rounded down to its largest unit: `40 s`, `5 min`, `3 h`, `2 d`. */
export function elapsed(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
  ];
  for (const [size, unit] of units) if (ms >= size) return `${Math.floor(ms / size)} ${unit}`;
  return `${Math.max(0, Math.floor(ms / 1000))} s`;
}

/** What an input record tells of the message, without the user's code. */
export interface RecordedInput {
  id: string;
  type: string;
  data: unknown;
  at: Date;
}

/** The error a park recorded. */
export interface ParkedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** A workflow instance, from its stream alone (the CLI has no workflow definitions). */
export interface WorkflowInstanceSummary {
  workflow: string;
  instanceId: string;
  streamId: string;
  state: InstanceState;
  /** The stream's version. */
  version: number;
  /** The last input recorded (handled, parked or kept while parked). */
  lastInput: RecordedInput | null;
  timers: PendingTimerView[];
  /** How many of `timers` are overdue (`isOverdue`) when the summary was made: no timer runner fired them. */
  overdueTimers: number;
  /** While parked: the input that failed, its error, and how many inputs wait for the retry. */
  parked: {
    input: RecordedInput;
    error: ParkedError;
    pending: number;
    at: Date;
  } | null;
  /**
   * The first record that cannot be read (a shape its type never has: written
   * by hand, a bug or an older release), with what is wrong; `null` when
   * every record reads. The rest of the summary is what the other records
   * tell: the state by the records' types, the last input, timers and park
   * from the records that read.
   */
  unreadable: UnreadableRecord | null;
}

/** A record of an instance that cannot be read, and why. */
export interface UnreadableRecord {
  /** Its stream version. */
  version: number;
  /** Its position in the store. */
  position: number;
  type: string;
  /** What is wrong, at its path: `data.error must be an object, got undefined`. */
  problem: string;
}

/** The record's name: `record #4 ($workflow.parked, position 20)`. */
export const unreadableRecordName = (u: UnreadableRecord) => `record #${u.version} (${u.type}, position ${u.position})`;

/** One line naming the record and what is wrong: `record #4 ($workflow.parked, position 20): data.error …`. */
export const describeUnreadable = (u: UnreadableRecord) => `${unreadableRecordName(u)}: ${u.problem}`;

type Fields = Record<string, unknown>;

const isObject = (value: unknown): value is Fields =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The first problem of a check, read in order; a check returns `undefined` when it holds. */
const firstOf = (...checks: (() => string | undefined)[]) => {
  for (const check of checks) {
    const problem = check();
    if (problem !== undefined) return problem;
  }
  return undefined;
};

const mustBe = (what: string, path: string, value: unknown) => `${path} must be ${what}, got ${describeValue(value)}`;
const object = (value: unknown, path: string) => (isObject(value) ? undefined : mustBe('an object', path, value));
const string = (value: unknown, path: string) =>
  typeof value === 'string' ? undefined : mustBe('a string', path, value);

/** The largest time a `Date` holds, in ms either side of the epoch. */
const maxTime = 8.64e15;

/** An input record (`$workflow.input`, `deferred`, or a park's `input`) as the summary reads it. */
function inputProblem(record: unknown, path: string): string | undefined {
  const data = record as Fields;
  const message = () => data.message as Fields;
  const timer = () => data.timer as Fields;
  return firstOf(
    () => object(record, path),
    () => object(data.message, `${path}.message`),
    () => string(message().id, `${path}.message.id`),
    () => string(message().type, `${path}.message.type`),
    () => (data.timer === undefined ? undefined : object(data.timer, `${path}.timer`)),
    () => (data.timer === undefined ? undefined : string(timer().timerId, `${path}.timer.timerId`)),
  );
}

/**
 * What is wrong with a recorded event of an instance, as `workflows ls|show`
 * read it: a row that is not JSON, or a field of the record shapes core
 * writes that they use; `undefined` when it reads. A type they do not read
 * is wrong only when its row is not JSON.
 *
 * @example
 * recordProblem(event); // 'data.dueAt must be a time in ms since the epoch, got \'tomorrow\''
 */
export function recordProblem(event: StoredEvent): string | undefined {
  const notJson = notJsonProblem(event);
  if (notJson !== undefined) return notJson;
  const data = event.data as Fields;
  const message = () => data.message as Fields;
  switch (event.type) {
    case T.input:
    case T.deferred:
      return inputProblem(event.data, 'data');
    case T.parked: {
      const error = () => data.error as Fields;
      return firstOf(
        () => object(event.data, 'data'),
        () => inputProblem(data.input, 'data.input'),
        () => object(data.error, 'data.error'),
        () => string(error().name, 'data.error.name'),
        () => string(error().message, 'data.error.message'),
      );
    }
    case T.timerScheduled:
      return firstOf(
        () => object(event.data, 'data'),
        () => string(data.token, 'data.token'),
        () =>
          typeof data.dueAt === 'number' && Math.abs(data.dueAt) <= maxTime
            ? undefined
            : mustBe('a time in ms since the epoch', 'data.dueAt', data.dueAt),
        () => object(data.message, 'data.message'),
        () => string(message().type, 'data.message.type'),
      );
    case T.timerCancelled:
      return firstOf(
        () => object(event.data, 'data'),
        () => string(data.token, 'data.token'),
      );
    case T.sent:
      return firstOf(
        () => object(event.data, 'data'),
        () => object(data.message, 'data.message'),
        () => string(message().type, 'data.message.type'),
      );
    default:
      return undefined;
  }
}

interface InputRecord {
  message: { id: string; type: string; data: unknown };
}

const inputOf = (record: InputRecord, at: Date): RecordedInput => ({
  id: record.message.id,
  type: record.message.type,
  data: record.message.data,
  at,
});

/** Splits `<workflow>-<instanceId>` (a workflow's name holds no `-`). */
export function splitInstanceStream(streamId: string): { workflow: string; instanceId: string } {
  const dash = streamId.indexOf('-');
  return { workflow: streamId.slice(0, dash), instanceId: streamId.slice(dash + 1) };
}

/**
 * Folds an instance's recorded events into what `workflows ls|show` print: its
 * state, last input, pending timers (by the rule the timer tables are kept
 * by, those overdue at `now` counted) and, while parked, the failed input with its error. A record that
 * cannot be read never throws: its type still sets the state, the rest of it
 * is left out, and the first such record is `unreadable` with why.
 *
 * @example
 * const summary = summarizeInstance('shipping-A1', events);
 */
export function summarizeInstance(
  streamId: string,
  events: readonly StoredEvent[],
  now = Date.now(),
): WorkflowInstanceSummary {
  let state: InstanceState = 'running';
  let lastInput: RecordedInput | null = null;
  let parked: WorkflowInstanceSummary['parked'] = null;
  let unreadable: UnreadableRecord | null = null;
  const readable: StoredEvent[] = [];
  for (const event of events) {
    const problem = recordProblem(event);
    if (problem === undefined) readable.push(event);
    else unreadable ??= { version: event.streamVersion, position: event.position, type: event.type, problem };
    switch (event.type) {
      case T.input:
      case T.deferred:
        if (problem !== undefined) break;
        lastInput = inputOf(event.data as InputRecord, event.recordedAt);
        if (event.type === T.deferred && parked) parked.pending++;
        break;
      case T.parked: {
        state = 'parked';
        parked = null;
        if (problem !== undefined) break;
        const data = event.data as { input: InputRecord; error: ParkedError };
        lastInput = inputOf(data.input, event.recordedAt);
        parked = { input: lastInput, error: data.error, pending: 0, at: event.recordedAt };
        break;
      }
      case T.resumed:
        parked = null;
        state = 'running';
        break;
      case T.completed:
        state = 'completed';
        break;
      case T.cancelled:
        parked = null;
        state = 'cancelled';
        break;
    }
  }
  const pending = new Map<string, PendingTimerView & { timerId: string }>();
  for (const change of timerChanges(readable)) {
    if (change.kind === 'schedule') {
      const { token, dueAt, timerId, message } = change.timer;
      pending.set(token, { token, dueAt: new Date(dueAt), messageType: message.type, timerId });
    } else if (change.kind === 'cancel') pending.delete(change.token);
    else if (change.kind === 'end') pending.clear();
    else for (const [token, timer] of pending) if (timer.timerId === change.timerId) pending.delete(token);
  }
  const timers = [...pending.values()]
    .map(({ token, dueAt, messageType }) => ({ token, dueAt, messageType }))
    .sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime());
  return {
    ...splitInstanceStream(streamId),
    streamId,
    state,
    version: events.at(-1)?.streamVersion ?? 0,
    lastInput,
    timers,
    overdueTimers: timers.filter((timer) => isOverdue(timer, now)).length,
    parked,
    unreadable,
  };
}
