import { workflowEventTypes as T } from '@factline/core';
import { timerChanges } from '@factline/core/adapter';
import type { StoredEvent } from '../inspect/inspector.ts';

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
  /** While parked: the input that failed, its error, and how many inputs wait for the retry. */
  parked: {
    input: RecordedInput;
    error: ParkedError;
    pending: number;
    at: Date;
  } | null;
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
 * by) and, while parked, the failed input with its error.
 *
 * @example
 * const summary = summarizeInstance('shipping-A1', events);
 */
export function summarizeInstance(streamId: string, events: readonly StoredEvent[]): WorkflowInstanceSummary {
  let state: InstanceState = 'running';
  let lastInput: RecordedInput | null = null;
  let parked: WorkflowInstanceSummary['parked'] = null;
  for (const event of events) {
    switch (event.type) {
      case T.input:
      case T.deferred:
        lastInput = inputOf(event.data as InputRecord, event.recordedAt);
        if (event.type === T.deferred && parked) parked.pending++;
        break;
      case T.parked: {
        const data = event.data as { input: InputRecord; error: ParkedError };
        lastInput = inputOf(data.input, event.recordedAt);
        parked = { input: lastInput, error: data.error, pending: 0, at: event.recordedAt };
        state = 'parked';
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
  for (const change of timerChanges(events)) {
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
    parked,
  };
}
