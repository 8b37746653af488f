import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { uuidv7 } from '../ids/uuid-v7.ts';
import { describeValue } from '../options/check-options.ts';
import type { Event, EventMetadata, RecordedEvent } from '../store/types.ts';
import { traceCreate } from '../tracing/messaging-spans.ts';
import { currentMessageContext } from './context.ts';
import { checkMessage } from './message-validation.ts';

/** Keys every message's metadata may carry; user keys are allowed beside them. */
export interface MessageMetadata extends EventMetadata {
  /** W3C trace context of the span that produced the message (set when created inside a traced span). */
  traceparent?: string;
  /** W3C `tracestate` of that span, when it has one. */
  tracestate?: string;
}

/**
 * One envelope for events and commands alike, as transports carry them.
 * `key` orders delivery: messages with the same key are handled one at a
 * time, in order; different keys in parallel.
 */
export interface Message<Type extends string = string, Data = unknown> {
  /** Unique; consumers use it to apply a message at most once. UUIDv7 unless given. */
  id: string;
  type: Type;
  data: Data;
  metadata: MessageMetadata;
  /** Partition key. Default: the source stream id for events, else the message id. */
  key: string;
  /** Transport-level headers (content type, schema version, …): strings only. */
  headers: Record<string, string>;
  /** When the message was created. */
  createdAt: Date;
  /** When it should be delivered at the earliest (delayed delivery); absent = now. */
  deliverAt?: Date;
}

/**
 * The message form of each member of an event union, kept apart by `type`
 * so that checking `message.type` narrows `message.data`.
 *
 * @example
 * createConsumer<undefined, MessageOf<CartEvent>>({ ..., handler: (message) => message.type === 'ItemAdded' && reserve(message.data.sku) });
 */
export type MessageOf<E extends Event> = E extends Event ? Message<E['type'], E['data']> : never;

export interface MessageInput<Type extends string = string, Data = unknown> {
  type: Type;
  data: Data;
  id?: string;
  key?: string;
  metadata?: MessageMetadata;
  headers?: Record<string, string>;
  deliverAt?: Date;
}

/**
 * Builds a message. Inside a handler (see `runInMessageContext`) the new
 * message inherits the handled message's `correlationId` and gets its id as
 * `causationId`, unless the input sets them; outside one, a message without a
 * correlation id starts a correlation of its own (its own id).
 *
 * Throws one `ValidationError` listing every problem: names (type, id, key)
 * with control characters or lone surrogates, data or metadata JSON cannot
 * carry faithfully (NaN, undefined in an array, BigInt, a Map, a function…),
 * non-string headers, an invalid `deliverAt`, data and metadata over 1 MiB.
 *
 * @example
 * const message = createMessage({ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' });
 */
export function createMessage<Type extends string, Data>(
  input: MessageInput<Type, Data>,
  now: () => number = Date.now,
): Message<Type, Data> {
  const issues: ValidationIssue[] = [];
  checkMessage(input, '', false, issues);
  if (issues.length > 0) throw new ValidationError(issues);
  return buildMessage(input, now);
}

/** A message from an input already checked. */
function buildMessage<Type extends string, Data>(
  input: MessageInput<Type, Data>,
  now: () => number,
): Message<Type, Data> {
  const id = input.id ?? uuidv7();
  const metadata = inheritCorrelation({ ...input.metadata }, id);
  traceCreate(metadata, id);
  return {
    id,
    type: input.type,
    data: input.data,
    metadata,
    key: input.key ?? id,
    headers: { ...input.headers },
    createdAt: new Date(now()),
    ...(input.deliverAt ? { deliverAt: input.deliverAt } : {}),
  };
}

/** The message an appended event travels as: key = its stream id, id = the event id. */
export function messageFromEvent(event: RecordedEvent): Message {
  return {
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: { ...event.metadata },
    key: event.streamId,
    headers: {
      'factline-stream-id': event.streamId,
      'factline-stream-version': String(event.streamVersion),
      'factline-position': String(event.position),
      'factline-schema-version': String(event.schemaVersion),
    },
    createdAt: event.recordedAt,
  };
}

/**
 * Fills `correlationId` and `causationId` from the message being handled, if
 * any and if not set; `ownId` starts a new correlation when there is none.
 */
export function inheritCorrelation<M extends EventMetadata>(metadata: M, ownId?: string): M {
  const context = currentMessageContext();
  if (context) {
    if (metadata.correlationId === undefined) metadata.correlationId = context.correlationId;
    if (metadata.causationId === undefined) metadata.causationId = context.messageId;
  } else if (metadata.correlationId === undefined && ownId !== undefined) {
    metadata.correlationId = ownId;
  }
  return metadata;
}

/** The last time `isoTime` formatted: the messages of a batch mostly share their creation time. */
let lastIso = { time: Number.NaN, text: '' };

/** `date.toISOString()` (a valid date), formatted once for a run of dates of the same time. */
function isoTime(date: Date, time: number): string {
  if (time !== lastIso.time) lastIso = { time, text: date.toISOString() };
  return lastIso.text;
}

/** The JSON text a durable transport or outbox stores for a message. */
export function messageToJson(message: Message): string {
  const createdAt = message.createdAt;
  // A Date's own JSON form (`toJSON`) takes V8 off its fast path: a valid one goes in as the same
  // ISO string, in its place; anything else is left to JSON.stringify as it is.
  if (message.deliverAt !== undefined || Object.getPrototypeOf(createdAt) !== Date.prototype) {
    return JSON.stringify(message);
  }
  const time = createdAt.getTime();
  if (Number.isNaN(time)) return JSON.stringify(message);
  return JSON.stringify({ ...message, createdAt: isoTime(createdAt, time) });
}

/** A message back from its stored JSON, with `createdAt` and `deliverAt` as Dates again. */
export function messageFromJson(text: string): Message {
  // The parsed object is the message: its dates are set in place, no copy made.
  const parsed = JSON.parse(text) as Omit<Message, 'createdAt' | 'deliverAt'> & {
    createdAt: string | Date;
    deliverAt?: string | Date | null;
  };
  parsed.createdAt = new Date(parsed.createdAt);
  const deliverAt = parsed.deliverAt;
  if (deliverAt === null) delete parsed.deliverAt;
  else if (deliverAt !== undefined) parsed.deliverAt = new Date(deliverAt);
  return parsed as Message;
}

const isBuiltMessage = (value: Message | MessageInput): value is Message =>
  typeof value?.id === 'string' &&
  typeof value.key === 'string' &&
  (value as Message).createdAt instanceof Date &&
  typeof (value as Message).headers === 'object' &&
  typeof (value as Message).metadata === 'object';

/**
 * Messages for an outbox: built ones are kept as they are, inputs are built
 * (inheriting the handled message's correlation). Every message is checked
 * as `createMessage` checks one; one `ValidationError` lists every problem
 * of the batch (an id twice included), so nothing of it is written.
 */
export function prepareMessages(
  messages: readonly (Message | MessageInput)[],
  now: () => number = Date.now,
): Message[] {
  if (!Array.isArray(messages)) {
    throw new ValidationError({ path: 'messages', message: `must be an array, got ${describeValue(messages)}` });
  }
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  messages.forEach((message: Message | MessageInput, i) => {
    const before = issues.length;
    checkMessage(message, `messages[${i}]`, isBuiltMessage(message), issues);
    if (issues.length > before || message.id === undefined) return;
    if (seen.has(message.id)) issues.push({ path: `messages[${i}].id`, message: `'${message.id}' appears twice` });
    seen.add(message.id);
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return messages.map((m) => (isBuiltMessage(m) ? m : buildMessage(m, now)));
}
