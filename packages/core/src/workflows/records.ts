import { ValidationError } from '../errors/index.ts';
import type { Event, EventMetadata, EventToAppend } from '../store/types.ts';
import { derivedId } from './derived-id.ts';
import type { WorkflowInput, WorkflowOutput } from './types.ts';

/** The event types of an instance's stream. */
export const workflowEventTypes = {
  input: '$workflow.input',
  sent: '$workflow.sent',
  timerScheduled: '$workflow.timer-scheduled',
  timerCancelled: '$workflow.timer-cancelled',
  completed: '$workflow.completed',
  parked: '$workflow.parked',
  deferred: '$workflow.deferred',
  resumed: '$workflow.resumed',
  cancelled: '$workflow.cancelled',
} as const;

/** A fired timer, as its input record names it. */
export interface FiredTimerRef {
  timerId: string;
  token: string;
  dueAt: number;
}

export interface InputRecordData {
  message: WorkflowInput;
  timer?: FiredTimerRef;
}

export interface SentRecordData {
  message: { type: string; data: unknown; key?: string };
  topic?: string;
}

export interface TimerScheduledData {
  token: string;
  /** Milliseconds since the epoch. */
  dueAt: number;
  message: { type: string; data: unknown };
}

export interface ParkedRecordData {
  input: InputRecordData;
  error: { name: string; message: string; code?: string; stack?: string };
  state: unknown;
}

/** Metadata of everything one input leads to: its correlation, caused by it. */
export function recordMetadata(input: WorkflowInput): EventMetadata {
  return { correlationId: input.metadata.correlationId ?? input.id, causationId: input.id };
}

/**
 * The events recording one handled input and its decided outputs, each with
 * an id derived from the instance, the input and its place, so recording the
 * same decision again names the same events (and the relay the same message ids).
 */
export function decisionEvents(
  streamId: string,
  record: InputRecordData,
  outputs: readonly WorkflowOutput[],
  now: number,
  salt = '',
): EventToAppend[] {
  const inputId = derivedId(streamId, record.message.id, 'input', salt);
  const metadata = recordMetadata(record.message);
  const events: EventToAppend[] = [{ id: inputId, type: workflowEventTypes.input, data: record, metadata }];
  outputs.forEach((output, i) => {
    const id = derivedId(inputId, 'output', String(i));
    events.push({ id, ...outputEvent(output, now), metadata });
  });
  return events;
}

function outputEvent(output: WorkflowOutput, now: number): Event {
  switch (output?.kind) {
    case 'send': {
      const data: SentRecordData = { message: output.message };
      if (output.topic !== undefined) data.topic = output.topic;
      return { type: workflowEventTypes.sent, data };
    }
    case 'schedule': {
      const dueAt = output.at ? output.at.getTime() : now + (output.afterMs ?? Number.NaN);
      if (!Number.isFinite(dueAt) || typeof output.token !== 'string' || output.token.length === 0) {
        throw new ValidationError({
          path: 'schedule',
          message: 'needs a non-empty token and a valid `at` (Date) or `afterMs` (number)',
        });
      }
      const data: TimerScheduledData = { token: output.token, dueAt, message: output.message };
      return { type: workflowEventTypes.timerScheduled, data };
    }
    case 'cancel':
      return { type: workflowEventTypes.timerCancelled, data: { token: output.token } };
    case 'complete':
      return { type: workflowEventTypes.completed, data: {} };
    default:
      throw new ValidationError({
        path: 'decide',
        message: 'returned something that is not an output (use send, schedule, cancelTimer, complete)',
      });
  }
}

/** The outputs `decide` returned, as an array. */
export function outputList(decided: WorkflowOutput | readonly WorkflowOutput[] | undefined): WorkflowOutput[] {
  if (decided === undefined) return [];
  return Array.isArray(decided) ? [...decided] : [decided as WorkflowOutput];
}

/** The error as a parked record keeps it (JSON-safe). */
export function describeError(error: unknown): ParkedRecordData['error'] {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(error.stack ? { stack: error.stack } : {}),
    };
  }
  return { name: 'Error', message: String(error) };
}
