import { isValidationError, ValidationError, type ValidationIssue } from '../errors/index.ts';
import { assertMessage } from '../messaging/message-validation.ts';
import { describeValue } from '../options/check-options.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import { checkJson, storableFailureText } from '../store/json-checks.ts';
import type { Event, EventMetadata, EventToAppend } from '../store/types.ts';
import { assertName, MAX_NAME_LENGTH } from '../store/validation.ts';
import { derivedId } from './derived-id.ts';
import { scheduledSchema, type WorkflowInputSchema } from './input-schema.ts';
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
  /**
   * The schema version `message.data` is at (and the kind of type it is read
   * as): upcast from it to the current version when the instance loads.
   * Without it, version 1.
   */
  schema?: WorkflowInputSchema;
}

export interface SentRecordData {
  /**
   * With the version of its type when the store's registry defines it as a message: the relay publishes it with
   * that version in its `factline-schema-version` header.
   */
  message: { type: string; data: unknown; key?: string; schema?: WorkflowInputSchema };
  topic?: string;
}

export interface TimerScheduledData {
  token: string;
  /** Milliseconds since the epoch. */
  dueAt: number;
  /** With the version of its type when the store's registry defines it: the fired input is upcast from it. */
  message: { type: string; data: unknown; schema?: WorkflowInputSchema };
}

export interface ParkedRecordData {
  input: InputRecordData;
  error: { name: string; message: string; code?: string; stack?: string };
  /** The state the input was decided on (through `toSnapshot` when JSON cannot carry it; `null` when left out). */
  state: unknown;
  /** Why the state was left out: JSON could not carry it, nor its `toSnapshot`. */
  stateOmitted?: string;
}

/** Metadata of everything one input leads to: its correlation, caused by it. */
export function recordMetadata(input: WorkflowInput): EventMetadata {
  return { correlationId: input.metadata.correlationId ?? input.id, causationId: input.id };
}

/**
 * The events recording one handled input and its decided outputs, each with
 * an id derived from the instance, the input and its place, so recording the
 * same decision again names the same events (and the relay the same message
 * ids). A `schedule`'s message is stamped with its type's current version in
 * `schemas` (the store's registry), for the input it becomes.
 */
export function decisionEvents(
  streamId: string,
  record: InputRecordData,
  outputs: readonly WorkflowOutput[],
  now: number,
  { salt = '', schemas }: { salt?: string; schemas?: SchemaRegistry | undefined } = {},
): EventToAppend[] {
  const inputId = derivedId(streamId, record.message.id, 'input', salt);
  const metadata = recordMetadata(record.message);
  const events: EventToAppend[] = [{ id: inputId, type: workflowEventTypes.input, data: record, metadata }];
  const completedAt = outputs.findIndex((output) => output?.kind === 'complete');
  outputs.forEach((output, i) => {
    const id = derivedId(inputId, 'output', String(i));
    // A timer scheduled after the end would stay pending on an ended instance (the end clears the timers before it).
    if (output?.kind === 'schedule' && completedAt !== -1 && i > completedAt) {
      throw new ValidationError({
        path: `outputs[${i}]`,
        message: `schedules timer '${String(output.token)}' after complete() (outputs[${completedAt}]): an ended instance has no timers; schedule before complete(), or not at all`,
      });
    }
    if (output?.kind === 'send') checkSent(streamId, output, `outputs[${i}]`);
    if (output?.kind === 'schedule') checkMessage(streamId, output.message, `outputs[${i}].message`);
    events.push({ id, ...outputEvent(output, now, `outputs[${i}]`, schemas), metadata });
  });
  return events;
}

/**
 * The outputs with each message as it will travel: a `schedule`'s when
 * `schemas` (the store's registry) defines its type, a `send`'s when it
 * defines its type as a message (as a consumer decodes what the relay
 * publishes). Its data is validated against the type's current schema
 * (awaiting an asynchronous validator) and replaced by the schema's output,
 * as an append or an outbox enqueue stores it, since `decisionEvents` stamps
 * it with that version. Data that does not fit is a `ValidationError` at
 * `outputs[i].message.data…`: the decision fails and the instance parks on
 * its input, instead of a timer or a consumer getting data its stamp
 * misdescribes. A type the registry does not define is kept as it is.
 */
export async function encodeOutputMessages(
  outputs: readonly WorkflowOutput[],
  schemas: SchemaRegistry | undefined,
): Promise<WorkflowOutput[]> {
  if (schemas === undefined) return [...outputs];
  const encoded: WorkflowOutput[] = [];
  for (const [i, output] of outputs.entries()) {
    const message = output?.kind === 'schedule' || output?.kind === 'send' ? output.message : undefined;
    const type = (message as Partial<WorkflowInput> | undefined)?.type;
    const schema = typeof type === 'string' ? outputSchema(schemas, output?.kind, type) : undefined;
    if (message === undefined || type === undefined || schema === undefined) {
      encoded.push(output);
      continue;
    }
    try {
      const { data } = await schemas.encode(schema.kind, type, message.data);
      encoded.push({ ...output, message: { ...message, data } } as WorkflowOutput);
    } catch (error) {
      if (!isValidationError(error)) throw error;
      const path = `outputs[${i}].message`;
      throw new ValidationError(error.issues.map((issue) => ({ ...issue, path: `${path}.${issue.path}` })));
    }
  }
  return encoded;
}

/** The version an output's message is stamped with: a schedule's type of either kind, a send's as a message. */
function outputSchema(
  schemas: SchemaRegistry | undefined,
  kind: WorkflowOutput['kind'] | undefined,
  type: string,
): WorkflowInputSchema | undefined {
  if (kind === 'schedule') return scheduledSchema(schemas, type);
  const definition = kind === 'send' ? schemas?.definition('message', type) : undefined;
  return definition === undefined ? undefined : { kind: 'message', version: definition.version };
}

/**
 * Refuses a `send` the relay could never publish (an empty or unreadable key
 * or type, data JSON cannot carry, a message over the transports' size, a
 * bad topic name): checked as the message the relay will build, so that the
 * decision fails (and the instance parks on its input) instead of stopping
 * the relay, and every instance's messages behind it, at the record.
 */
function checkSent(streamId: string, output: Extract<WorkflowOutput, { kind: 'send' }>, path: string): void {
  if (output.topic !== undefined) assertName(output.topic, `${path}.topic`);
  checkMessage(streamId, output.message, `${path}.message`);
}

/**
 * Refuses a message the instance could not record: a `send`'s as the relay
 * will build it, a `schedule`'s as its timer will deliver it (the store would
 * refuse the append, and a retry of the instance would stop at it).
 */
function checkMessage(streamId: string, given: unknown, path: string): void {
  const message = given as { type?: unknown; data?: unknown; key?: unknown } | undefined;
  const probe = {
    id: 'sent',
    type: message?.type,
    data: message?.data,
    metadata: {},
    key: message?.key ?? streamId,
    headers: {},
    createdAt: new Date(0),
  };
  assertMessage(probe, path);
}

function outputEvent(output: WorkflowOutput, now: number, path: string, schemas: SchemaRegistry | undefined): Event {
  switch (output?.kind) {
    case 'send': {
      const schema = outputSchema(schemas, 'send', output.message.type);
      const data: SentRecordData = { message: schema === undefined ? output.message : { ...output.message, schema } };
      if (output.topic !== undefined) data.topic = output.topic;
      return { type: workflowEventTypes.sent, data };
    }
    case 'schedule': {
      const schema = outputSchema(schemas, 'schedule', output.message.type);
      const data: TimerScheduledData = {
        token: output.token,
        dueAt: dueTime(output, now, path),
        message: schema === undefined ? output.message : { ...output.message, schema },
      };
      return { type: workflowEventTypes.timerScheduled, data };
    }
    case 'cancel':
      return { type: workflowEventTypes.timerCancelled, data: { token: output.token } };
    case 'complete':
      return { type: workflowEventTypes.completed, data: {} };
    default:
      throw new ValidationError({
        path,
        message: 'returned something that is not an output (use send, schedule, cancelTimer, complete)',
      });
  }
}

/**
 * A `schedule`'s due time in whole milliseconds since the epoch (rounded up):
 * its `at`, a valid `Date`, else `afterMs` (a finite number) after `now`.
 * A missing token or due time fails the decision, naming the output, as does
 * a token over `MAX_NAME_LENGTH` characters (PostgreSQL's timer table indexes
 * the instance's stream id with the token, in at most 2704 bytes a row).
 */
function dueTime(output: Extract<WorkflowOutput, { kind: 'schedule' }>, now: number, path: string): number {
  const { token, at, afterMs } = output as { token: unknown; at: unknown; afterMs: unknown };
  if (typeof token !== 'string' || token.length === 0) {
    throw new ValidationError({
      path: `${path}.token`,
      message: `must be a non-empty string, got ${describeValue(token)}`,
    });
  }
  if (token.length > MAX_NAME_LENGTH) {
    throw new ValidationError({
      path: `${path}.token`,
      message: `is ${token.length} characters long; the limit is ${MAX_NAME_LENGTH}`,
    });
  }
  if (at !== undefined) {
    if (at instanceof Date && Number.isFinite(at.getTime())) return Math.ceil(at.getTime());
    const got = at instanceof Date ? 'an invalid Date' : describeValue(at);
    throw new ValidationError({ path: `${path}.at`, message: `must be a valid Date, got ${got}` });
  }
  if (typeof afterMs === 'number' && Number.isFinite(afterMs)) return Math.ceil(now + afterMs);
  if (afterMs === undefined) {
    throw new ValidationError({ path, message: 'a schedule needs `at` (a Date) or `afterMs` (a number of ms)' });
  }
  throw new ValidationError({
    path: `${path}.afterMs`,
    message: `must be a finite number of ms, got ${describeValue(afterMs)}`,
  });
}

/** The outputs `decide` returned, as an array. */
export function outputList(decided: WorkflowOutput | readonly WorkflowOutput[] | undefined): WorkflowOutput[] {
  if (decided === undefined) return [];
  return Array.isArray(decided) ? [...decided] : [decided as WorkflowOutput];
}

/**
 * The error as a parked record keeps it (JSON-safe), its text as
 * `storableFailureText` has it (a NUL as U+2400, a lone surrogate as
 * U+FFFD): the store refuses neither the park nor the listing.
 */
export function describeError(error: unknown): ParkedRecordData['error'] {
  const text = (value: unknown) => storableFailureText(String(value));
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: text(error.name),
      message: text(error.message),
      ...(typeof code === 'string' ? { code: text(code) } : {}),
      ...(error.stack ? { stack: text(error.stack) } : {}),
    };
  }
  return { name: 'Error', message: text(error) };
}

/**
 * The state a parked record keeps for the operator: as it is when JSON can
 * carry it, else through the snapshots' `toSnapshot` (a `Map` in the state),
 * else left out with the reason (`stateOmitted`). A park never fails on it:
 * the store would refuse the record, and the input would be dead-lettered
 * instead of kept.
 */
export function parkedState(state: unknown, toSnapshot?: (state: never) => unknown) {
  const problem = (value: unknown) => {
    const issues: ValidationIssue[] = [];
    checkJson(value, 'state', issues);
    // The path names the key: kept as failure text is (a key may hold a NUL).
    return issues[0] ? storableFailureText(`${issues[0].path}: ${issues[0].message}`) : undefined;
  };
  const raw = problem(state);
  if (raw === undefined) return { state };
  if (toSnapshot) {
    try {
      const converted = toSnapshot(state as never);
      if (problem(converted) === undefined) return { state: converted };
    } catch {
      // Left out below, with the first reason.
    }
  }
  return { state: null, stateOmitted: raw };
}
