import { ConcurrencyError, ValidationError, type ValidationIssue } from '../errors/index.ts';
import { uuidv7 } from '../ids/uuid-v7.ts';
import { currentMessageContext } from '../messaging/context.ts';
import { describeValue as describe } from '../options/check-options.ts';
import { currentTraceFields } from '../tracing/trace-context.ts';
import { checkJson, illFormed, isPlainObject, isWellFormedText } from './json-checks.ts';
import { checkAppendOptions } from './store-options.ts';
import type { DeleteMode, EventToAppend, ExpectedVersion } from './types.ts';

/** Limits every store enforces before writing. */
export interface StoreLimits {
  /** Largest serialized `data` + `metadata` of one event, in bytes. Default 1 MiB. */
  maxEventBytes: number;
  /** Longest stream id, in characters. Default 200, at most `MAX_STREAM_ID_LENGTH` (600). */
  maxStreamIdLength: number;
}

/**
 * The highest `limits.maxStreamIdLength`: PostgreSQL's btree indexes hold at
 * most 2704 bytes a row, and a stream id of 600 characters of 3 UTF-8 bytes
 * that do not compress, with a snapshot's name of 256 such characters, fits.
 */
export const MAX_STREAM_ID_LENGTH = 600;

export const defaultStoreLimits: StoreLimits = Object.freeze({ maxEventBytes: 1024 * 1024, maxStreamIdLength: 200 });

/** Longest event type or event id, in characters. */
export const MAX_NAME_LENGTH = 256;
/** The highest schema version an event may carry: the SQL stores keep it as a 32-bit integer. */
export const MAX_SCHEMA_VERSION = 2_147_483_647;
// C0 controls, DEL and C1 controls: invisible in logs, and NUL breaks C-string drivers.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// Without the u flag: any control character or surrogate code unit, so a name without either is clean at once.
const CONTROL_OR_SURROGATE = /[\u0000-\u001f\u007f-\u009f\uD800-\uDFFF]/;
// With the u flag a surrogate pair is one code point, so this matches lone surrogates only.
/** The metadata keys an event and a message carry between each other: ids and trace context. */
const METADATA_IDS = ['correlationId', 'causationId', 'traceparent', 'tracestate'] as const;
/** The ids PostgreSQL indexes (events, transport, outbox, dead letters): a name's length at most. */
const CAPPED_IDS: ReadonlySet<string> = new Set(['correlationId', 'causationId']);

/**
 * Whether `checkMetadataIds` finds no problem with `metadata`, without
 * building a path.
 */
export function cleanMetadataIds(metadata: Record<string, unknown>): boolean {
  for (const key of METADATA_IDS) {
    const id = metadata[key];
    if (id === undefined) continue;
    if (typeof id !== 'string' || CONTROL_CHARS.test(id)) return false;
    if (CAPPED_IDS.has(key) && id.length > MAX_NAME_LENGTH) return false;
  }
  return true;
}

/**
 * Records the problems of the ids and trace context in an event's or a
 * message's metadata (the same rules: an event's become a message's through
 * a relay, a message's an event's in its handler): strings without control
 * characters, `correlationId` and `causationId` at most `MAX_NAME_LENGTH`
 * characters (an id by default; PostgreSQL indexes the correlation id, and
 * its index refuses a long one). `path` is the metadata's.
 */
export function checkMetadataIds(metadata: Record<string, unknown>, path: string, issues: ValidationIssue[]): void {
  for (const key of METADATA_IDS) {
    const id = metadata[key];
    if (id === undefined) continue;
    if (typeof id !== 'string') {
      // A `traceparent` that is no string would be stored, then refused by every transport, halting a relay.
      issues.push({ path: `${path}.${key}`, message: `must be a string, got ${describe(id)}` });
    } else if (CONTROL_CHARS.test(id)) {
      // PostgreSQL's index on the correlation id cannot hold a NUL, transports' headers no newline.
      issues.push({ path: `${path}.${key}`, message: 'must not contain control characters' });
    } else if (CAPPED_IDS.has(key) && id.length > MAX_NAME_LENGTH) {
      issues.push({
        path: `${path}.${key}`,
        message: `is ${id.length} characters long; the limit is ${MAX_NAME_LENGTH}`,
      });
    }
  }
}

/** An event checked and serialized, ready for an adapter to write. */
export interface PreparedEvent {
  id: string;
  type: string;
  schemaVersion: number;
  data: string;
  metadata: string;
}

export interface PreparedAppend {
  streamId: string;
  category: string;
  expectedVersion: ExpectedVersion;
  events: PreparedEvent[];
  /**
   * Whether the caller chose any of the event ids. When it did not, every id is
   * freshly generated, so the append cannot be a retry of a stored one and an
   * adapter may skip looking its ids up on a conflict.
   */
  callerIds: boolean;
}

/** The category of a stream: the part of its id before the first `-` (the whole id if none). */
export function streamCategory(streamId: string): string {
  const dash = streamId.indexOf('-');
  return dash === -1 ? streamId : streamId.slice(0, dash);
}

/**
 * Records the problem of a name (stream id, type, id, topic, group, key), if
 * any: a non-empty string of at most `max` characters, with no control
 * character and no lone surrogate.
 */
export function checkName(value: unknown, path: string, max: number, issues: ValidationIssue[]): void {
  if (typeof value !== 'string') {
    issues.push({ path, message: `must be a string, got ${describe(value)}` });
  } else if (value.length === 0) {
    issues.push({ path, message: 'must not be empty' });
  } else if (value.length > max) {
    issues.push({ path, message: `is ${value.length} characters long; the limit is ${max}` });
  } else if (CONTROL_CHARS.test(value)) {
    issues.push({ path, message: 'must not contain control characters' });
  } else if (!isWellFormedText(value)) {
    issues.push({ path, message: illFormed(value) });
  }
}

/** Whether `checkName` finds no problem with `value`, without building the path it would report under. */
export function isCleanName(value: unknown, max: number): boolean {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) return false;
  // Only a name with a control character or a surrogate needs the exact checks (a pair is allowed).
  return !CONTROL_OR_SURROGATE.test(value) || (!CONTROL_CHARS.test(value) && isWellFormedText(value));
}

/**
 * Throws `ValidationError` unless `value` is a usable name (a topic, group,
 * projection or lease name): a non-empty string with no control character and
 * no lone surrogate.
 *
 * @example
 * assertName(topic, 'topic');
 */
export function assertName(value: unknown, path: string): asserts value is string {
  const issues: ValidationIssue[] = [];
  checkName(value, path, Number.POSITIVE_INFINITY, issues);
  if (issues.length > 0) throw new ValidationError(issues);
}

/** Throws `ValidationError` unless `streamId` is a usable stream id. */
export function assertStreamId(
  streamId: unknown,
  limits: StoreLimits = defaultStoreLimits,
): asserts streamId is string {
  const issues: ValidationIssue[] = [];
  checkName(streamId, 'streamId', limits.maxStreamIdLength, issues);
  if (issues.length > 0) throw new ValidationError(issues);
}

/** Throws `ValidationError` unless `value` is one of the four expected-version forms. */
export function assertExpectedVersion(value: unknown, path = 'expectedVersion'): ExpectedVersion {
  if (value === undefined) return 'any';
  if (value === 'any' || value === 'no-stream' || value === 'stream-exists') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new ValidationError({
    path,
    message: `must be a version number (>= 0), 'no-stream', 'stream-exists' or 'any'; got ${describe(value)}`,
  });
}

/**
 * Checks `expected` against the stream's current version (0 = no stream) and
 * throws `ConcurrencyError` on a mismatch. Shared by every adapter so the rule
 * is written once.
 */
export function checkExpectedVersion(streamId: string, expected: ExpectedVersion, actual: number): void {
  const ok =
    expected === 'any' ||
    (expected === 'no-stream' && actual === 0) ||
    (expected === 'stream-exists' && actual > 0) ||
    expected === actual;
  if (!ok) throw new ConcurrencyError(streamId, expected, actual);
}

/**
 * Validates and serializes an append: the stream id, the events and the
 * append's options (as the caller gave them). Throws `ValidationError` listing
 * every problem found.
 */
export function prepareAppend(
  streamId: unknown,
  events: unknown,
  options: unknown,
  limits: StoreLimits = defaultStoreLimits,
): PreparedAppend {
  const issues: ValidationIssue[] = [];
  checkName(streamId, 'streamId', limits.maxStreamIdLength, issues);
  const expected = checkAppendOptions(options, issues);
  const prepared: PreparedEvent[] = [];
  if (!Array.isArray(events)) {
    issues.push({ path: 'events', message: `must be an array, got ${describe(events)}` });
  } else if (events.length === 0) {
    issues.push({ path: 'events', message: 'must hold at least one event' });
  } else {
    // One event needs no duplicate-id check (the common case: no Set).
    const ids = events.length > 1 ? new Set<string>() : undefined;
    for (let index = 0; index < events.length; index++) {
      const result = prepareEvent(events[index], `events[${index}]`, limits, issues);
      if (result === undefined) continue;
      if (ids?.has(result.id)) issues.push({ path: `events[${index}].id`, message: `'${result.id}' appears twice` });
      ids?.add(result.id);
      prepared.push(result);
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return {
    streamId: streamId as string,
    category: streamCategory(streamId as string),
    expectedVersion: expected,
    events: prepared,
    callerIds: (events as Partial<EventToAppend>[]).some((event) => event.id !== undefined),
  };
}

function prepareEvent(
  value: unknown,
  path: string,
  limits: StoreLimits,
  issues: ValidationIssue[],
): PreparedEvent | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push({ path, message: `must be an object with 'type' and 'data', got ${describe(value)}` });
    return undefined;
  }
  const event = value as Partial<EventToAppend>;
  const before = issues.length;
  checkName(event.type, `${path}.type`, MAX_NAME_LENGTH, issues);
  if (event.id !== undefined) checkName(event.id, `${path}.id`, MAX_NAME_LENGTH, issues);
  const schemaVersion = event.schemaVersion ?? 1;
  // Bounded as the SQL stores keep it (a 32-bit integer): every store refuses what one refuses.
  if (!Number.isSafeInteger(schemaVersion) || schemaVersion < 1 || schemaVersion > MAX_SCHEMA_VERSION) {
    issues.push({
      path: `${path}.schemaVersion`,
      message: `must be an integer from 1 to ${MAX_SCHEMA_VERSION}, got ${describe(schemaVersion)}`,
    });
  }
  if (event.data === undefined) {
    issues.push({ path: `${path}.data`, message: 'is missing (use null or {} for an event without data)' });
  } else {
    checkJson(event.data, `${path}.data`, issues);
  }
  if (event.metadata !== undefined) {
    if (!isPlainObject(event.metadata)) {
      issues.push({ path: `${path}.metadata`, message: `must be a plain object, got ${describe(event.metadata)}` });
    } else {
      checkMetadataIds(event.metadata, `${path}.metadata`, issues);
      checkJson(event.metadata, `${path}.metadata`, issues);
    }
  }
  if (issues.length > before) return undefined;
  const id = event.id ?? uuidv7();
  // A `toJSON` decides what its value becomes, past the checks: it may give nothing, or a value JSON cannot carry.
  const data = serialized(() => JSON.stringify(event.data), `${path}.data`, issues);
  const metadata = serialized(() => serializeMetadata(event.metadata, id), `${path}.metadata`, issues);
  if (data === undefined || metadata === undefined) return undefined;
  // Each UTF-16 unit is at most 3 UTF-8 bytes: count exactly only when that bound is over the limit.
  const bound = (data.length + metadata.length) * 3;
  const size = bound <= limits.maxEventBytes ? bound : Buffer.byteLength(data) + Buffer.byteLength(metadata);
  if (size > limits.maxEventBytes) {
    issues.push({ path, message: `is ${size} bytes serialized; the limit is ${limits.maxEventBytes}` });
    return undefined;
  }
  return { id, type: event.type as string, schemaVersion, data, metadata };
}

/** The JSON text `serialize` makes, or an issue at `path` when it throws or makes none. */
function serialized(serialize: () => string | undefined, path: string, issues: ValidationIssue[]): string | undefined {
  let text: string | undefined;
  try {
    text = serialize();
  } catch (error) {
    issues.push({
      path,
      message: `cannot be serialized as JSON: ${error instanceof Error ? error.message : String(error)}`,
    });
    return undefined;
  }
  if (typeof text !== 'string')
    issues.push({ path, message: 'serializes to nothing (a toJSON that returns undefined?)' });
  return text;
}

/** Validates `deleteStream`'s mode. */
export function assertDeleteMode(value: unknown): DeleteMode {
  if (value === undefined) return 'soft';
  if (value === 'soft' || value === 'hard') return value;
  throw new ValidationError({ path: 'mode', message: `must be 'soft' or 'hard', got ${describe(value)}` });
}

/** Validates an optional integer option. */
export function assertIntegerOption(value: unknown, path: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min) return value;
  throw new ValidationError({ path, message: `must be an integer >= ${min}, got ${describe(value)}` });
}

/** Throws `ValidationError` unless `value` is a global position: an integer >= 0 (required). */
export function assertPosition(value: unknown, path = 'position'): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new ValidationError({ path, message: `must be an integer >= 0, got ${describe(value)}` });
}

/** Validates an optional list of names (event types, categories). */
export function assertNameList(value: unknown, path: string): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new ValidationError({ path, message: `must be an array of strings, got ${describe(value)}` });
  }
  const issues: ValidationIssue[] = [];
  value.forEach((name: string, i) => {
    if (!isWellFormedText(name)) issues.push({ path: `${path}[${i}]`, message: illFormed(name) });
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return value as string[];
}

/**
 * Inside a message handler (see `runInMessageContext`), an event inherits the
 * handled message's correlation id and gets its id as causation id, unless
 * the event's metadata sets them. Outside one, an event with no correlation
 * id starts an operation: its own id (`id`) is its correlation id, as a
 * message made outside a handler has (so `traceOperation` finds it).
 */
function serializeMetadata(metadata: EventToAppend['metadata'], id: string): string {
  const context = currentMessageContext();
  // The span current at the append (its own span, when traced): consumers of the event link to it.
  const trace = currentTraceFields();
  if (!context && !trace) {
    if (metadata?.correlationId !== undefined) return JSON.stringify(metadata);
    return JSON.stringify({ ...metadata, correlationId: id });
  }
  const inherited: Record<string, unknown> = { ...metadata };
  if (inherited.correlationId === undefined) inherited.correlationId = context ? context.correlationId : id;
  if (context && inherited.causationId === undefined) inherited.causationId = context.messageId;
  if (trace && inherited.traceparent === undefined) Object.assign(inherited, trace);
  return JSON.stringify(inherited);
}
