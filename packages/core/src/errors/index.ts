/**
 * Factline's errors. Every error carries a string `code` and a `retryable`
 * flag, so callers (and retry policies) can decide without `instanceof`,
 * which breaks when two copies of the package are installed.
 */

import { quoteText } from './quote.ts';

const FACTLINE_ERROR = Symbol.for('factline.error');

export type FactlineErrorCode =
  | 'CONCURRENCY_CONFLICT'
  | 'VALIDATION'
  | 'EVENT_ID_CONFLICT'
  | 'STREAM_NOT_FOUND'
  | 'STREAM_DELETED'
  | 'STORE_CLOSED'
  | 'COMMAND_RETRIES_EXHAUSTED'
  | 'PROJECTION_FAILED'
  | 'PROJECTION_SUPERSEDED'
  | 'TIMEOUT'
  | 'STORAGE'
  | 'NON_RETRYABLE'
  // Messaging: a publish that no subscription would receive, a transport that failed or closed.
  | 'NO_SUBSCRIPTION'
  | 'TRANSPORT'
  // Schema evolution: a stored item the registry cannot read, an upcaster that threw.
  | 'SCHEMA'
  | 'UPCAST'
  // Reserved for the workflow package.
  | 'WORKFLOW'
  | 'TIMER';

export interface FactlineErrorOptions {
  cause?: unknown;
  retryable?: boolean;
}

/** Base class of every error Factline throws on purpose. */
export class FactlineError extends Error {
  readonly code: FactlineErrorCode;
  readonly retryable: boolean;
  readonly [FACTLINE_ERROR] = true;

  constructor(code: FactlineErrorCode, message: string, options: FactlineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** The value a caller may pass as `expectedVersion` (see {@link ExpectedVersion} in the store types). */
type ExpectedVersionValue = number | 'no-stream' | 'stream-exists' | 'any';

/**
 * The stream was not at the version the writer expected: somebody else
 * appended first. Retryable: reload, decide again, append again.
 */
export class ConcurrencyError extends FactlineError {
  readonly streamId: string;
  readonly expectedVersion: ExpectedVersionValue;
  /** The stream's version when the append was checked (0 = no stream). */
  readonly actualVersion: number;

  constructor(streamId: string, expectedVersion: ExpectedVersionValue, actualVersion: number) {
    super(
      'CONCURRENCY_CONFLICT',
      `Stream '${streamId}' is at version ${actualVersion}, expected ${String(expectedVersion)}`,
      { retryable: true },
    );
    this.streamId = streamId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

export interface ValidationIssue {
  /** Where the problem is, e.g. `events[2].data.items[0].price`. */
  path: string;
  message: string;
}

/** Input was rejected before anything was written. Not retryable. */
export class ValidationError extends FactlineError {
  readonly issues: readonly ValidationIssue[];

  constructor(issues: ValidationIssue | readonly ValidationIssue[], options: FactlineErrorOptions = {}) {
    const list = Array.isArray(issues) ? issues : [issues as ValidationIssue];
    super('VALIDATION', list.map((i) => `${i.path}: ${i.message}`).join('; '), options);
    this.issues = list;
  }
}

/**
 * An event id is already stored, but not as the same append: another stream,
 * another position or other content. A genuine retry of the same append
 * succeeds instead of throwing this.
 */
export class EventIdConflictError extends FactlineError {
  readonly eventId: string;
  constructor(eventId: string, reason: string) {
    super('EVENT_ID_CONFLICT', `Event id '${eventId}' is already stored: ${reason}`);
    this.eventId = eventId;
  }
}

export class StreamNotFoundError extends FactlineError {
  readonly streamId: string;
  constructor(streamId: string) {
    super('STREAM_NOT_FOUND', `Stream '${streamId}' does not exist`);
    this.streamId = streamId;
  }
}

/** The stream was hard-deleted (tombstoned): it can never be read or written again. */
export class StreamDeletedError extends FactlineError {
  readonly streamId: string;
  constructor(streamId: string) {
    super('STREAM_DELETED', `Stream '${streamId}' was deleted permanently`);
    this.streamId = streamId;
  }
}

/**
 * The component was closed: an event store, a transport, an inbox. `what`
 * names it in the message (`'The transport is closed'`).
 */
export class StoreClosedError extends FactlineError {
  constructor(what = 'event store') {
    super('STORE_CLOSED', `The ${what} is closed`);
  }
}

/** Marks an error the handler cannot get past by retrying: the message goes straight to the dead-letter queue. */
export class NonRetryableError extends FactlineError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NON_RETRYABLE', message, { ...options, retryable: false });
  }
}

/**
 * A publish that had to reach at least one subscription (`requireSubscription`)
 * found none declared for its topic: nothing was written. Retryable: it
 * succeeds once a consumer group declares its subscription.
 */
export class NoSubscriptionError extends FactlineError {
  readonly topic: string;
  constructor(topic: string) {
    super('NO_SUBSCRIPTION', `Topic '${topic}' has no subscription yet: nothing was published`, { retryable: true });
    this.topic = topic;
  }
}

/** `handleCommand` gave up after its configured number of conflicting attempts. */
export class CommandRetriesExhaustedError extends FactlineError {
  readonly streamId: string;
  readonly attempts: number;
  constructor(streamId: string, attempts: number, cause: unknown) {
    super('COMMAND_RETRIES_EXHAUSTED', `Command on '${streamId}' still conflicted after ${attempts} attempts`, {
      cause,
      retryable: true,
    });
    this.streamId = streamId;
    this.attempts = attempts;
  }
}

/** A projection stopped on an event its handler kept failing on (see its status for details). */
export class ProjectionFailedError extends FactlineError {
  readonly projection: string;
  /** The global position of the event the handler failed on. */
  readonly position: number;
  constructor(projection: string, position: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('PROJECTION_FAILED', `Projection '${projection}' failed at position ${position}: ${reason}`, { cause });
    this.projection = projection;
    this.position = position;
  }
}

/**
 * A newer version of the projection is live: this runner refuses to run its
 * older version (it would write to a read model nothing reads any more).
 */
export class ProjectionSupersededError extends FactlineError {
  readonly projection: string;
  /** The version this runner was given. */
  readonly version: number;
  /** The version recorded as live. */
  readonly liveVersion: number;
  constructor(projection: string, version: number, liveVersion: number) {
    super(
      'PROJECTION_SUPERSEDED',
      `Projection '${projection}' version ${version} is superseded: version ${liveVersion} is live; this runner does not run it`,
    );
    this.projection = projection;
    this.version = version;
    this.liveVersion = liveVersion;
  }
}

/** A wait ran out of time (e.g. `waitFor` a projection position). Retryable: the work may still finish. */
export class TimeoutError extends FactlineError {
  constructor(message: string) {
    super('TIMEOUT', message, { retryable: true });
  }
}

/**
 * A workflow request that does not fit the instance's state: retrying or
 * cancelling an instance that is not parked, an instance that does not exist
 * (not retryable). Also an instance whose recorded input cannot be brought to
 * its current version (the registry's error as `cause`, retryable as it is).
 */
export class WorkflowError extends FactlineError {
  /** The instance's stream id. */
  readonly streamId: string;
  constructor(streamId: string, message: string, options?: FactlineErrorOptions) {
    super('WORKFLOW', `Workflow instance '${streamId}': ${message}`, options);
    this.streamId = streamId;
  }
}

/** A failure of the storage engine itself (disk, driver, connection). */
export class StorageError extends FactlineError {
  constructor(message: string, options: FactlineErrorOptions = {}) {
    super('STORAGE', message, options);
  }
}

/**
 * A message broker refused or failed an operation: unreachable, credentials
 * refused, a connection or channel closed, a publish nacked by the broker.
 * `retryable` says whether trying again can help (an outage: yes; refused
 * credentials: no).
 */
export class TransportError extends FactlineError {
  constructor(message: string, options: FactlineErrorOptions = {}) {
    super('TRANSPORT', message, { retryable: true, ...options });
  }
}

/** Which registry a type belongs to: events (the store) or messages (transports, outboxes). */
export type SchemaKind = 'event' | 'message';

/**
 * A stored event or message cannot be read with the schema registry: a type
 * the registry does not know (with `unknownTypes: 'error'`), a schema
 * version newer than the registry's current one (written by a newer
 * release), or a message whose `factline-schema-version` header is no
 * version. Retryable (another process running the newer release may read
 * it), except for a header that is no version, which no release reads.
 */
export class SchemaError extends FactlineError {
  readonly kind: SchemaKind;
  readonly type: string;
  /** The schema version it was stored with; `NaN` when its header is no version (`header`). */
  readonly schemaVersion: number;
  /** The text of a message's `factline-schema-version` header that is no version. */
  readonly header?: string;
  constructor(
    kind: SchemaKind,
    type: string,
    schemaVersion: number,
    reason: string,
    options: { header?: string } = {},
  ) {
    const at =
      options.header === undefined
        ? `schema version ${schemaVersion}`
        : `factline-schema-version header ${quoteText(options.header)}`;
    // A header that is no version reads as none in any release: trying again cannot help.
    super('SCHEMA', `Cannot read ${kind} '${type}' (${at}): ${reason}`, { retryable: options.header === undefined });
    this.kind = kind;
    this.type = type;
    this.schemaVersion = schemaVersion;
    if (options.header !== undefined) this.header = options.header;
  }
}

/**
 * An upcaster threw: the stored data of `type` could not be brought from
 * `fromVersion` to the next version. The upcaster's error is the `cause`.
 * Retryable like any handler failure, so a consumer retries it by its
 * policy and then dead-letters it.
 */
export class UpcastError extends FactlineError {
  readonly kind: SchemaKind;
  readonly type: string;
  /** The version the failing upcaster reads. */
  readonly fromVersion: number;
  constructor(kind: SchemaKind, type: string, fromVersion: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('UPCAST', `Upcasting ${kind} '${type}' from version ${fromVersion} to ${fromVersion + 1} failed: ${reason}`, {
      cause,
      retryable: true,
    });
    this.kind = kind;
    this.type = type;
    this.fromVersion = fromVersion;
  }
}

function hasCode(error: unknown, code: FactlineErrorCode): boolean {
  return isFactlineError(error) && error.code === code;
}

/** True for any Factline error, even one thrown by another copy of the package. */
export function isFactlineError(error: unknown): error is FactlineError {
  return (
    typeof error === 'object' && error !== null && (error as { [FACTLINE_ERROR]?: unknown })[FACTLINE_ERROR] === true
  );
}

export const isConcurrencyError = (e: unknown): e is ConcurrencyError => hasCode(e, 'CONCURRENCY_CONFLICT');
export const isValidationError = (e: unknown): e is ValidationError => hasCode(e, 'VALIDATION');
export const isEventIdConflictError = (e: unknown): e is EventIdConflictError => hasCode(e, 'EVENT_ID_CONFLICT');
export const isStreamNotFoundError = (e: unknown): e is StreamNotFoundError => hasCode(e, 'STREAM_NOT_FOUND');
export const isStreamDeletedError = (e: unknown): e is StreamDeletedError => hasCode(e, 'STREAM_DELETED');
export const isStoreClosedError = (e: unknown): e is StoreClosedError => hasCode(e, 'STORE_CLOSED');
export const isProjectionFailedError = (e: unknown): e is ProjectionFailedError => hasCode(e, 'PROJECTION_FAILED');
export const isProjectionSupersededError = (e: unknown): e is ProjectionSupersededError =>
  hasCode(e, 'PROJECTION_SUPERSEDED');
export const isTimeoutError = (e: unknown): e is TimeoutError => hasCode(e, 'TIMEOUT');
export const isStorageError = (e: unknown): e is StorageError => hasCode(e, 'STORAGE');
export const isTransportError = (e: unknown): e is TransportError => hasCode(e, 'TRANSPORT');
export const isNonRetryableError = (e: unknown): e is NonRetryableError => hasCode(e, 'NON_RETRYABLE');
export const isNoSubscriptionError = (e: unknown): e is NoSubscriptionError => hasCode(e, 'NO_SUBSCRIPTION');
export const isSchemaError = (e: unknown): e is SchemaError => hasCode(e, 'SCHEMA');
export const isWorkflowError = (e: unknown): e is WorkflowError => hasCode(e, 'WORKFLOW');
export const isUpcastError = (e: unknown): e is UpcastError => hasCode(e, 'UPCAST');
