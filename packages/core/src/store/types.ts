/**
 * The event store port. Rules every adapter keeps (checked by the
 * conformance suite in `@factline/core/testing`):
 * - an append is atomic: all of its events are stored, or none;
 * - `expectedVersion` is enforced exactly; a conflict throws `ConcurrencyError`;
 * - stream versions run 1, 2, 3… with no hole; event ids are unique;
 * - re-sending an append with the same event ids stores nothing new and succeeds;
 * - global positions strictly increase in `readAll` order, and a reader
 *   resuming after a saved position never skips or repeats a committed event;
 * - bad input throws `ValidationError` before anything is written.
 */

/** Keys every message may carry; user keys are allowed beside them. */
export interface EventMetadata {
  /** Shared by every message of one business operation. */
  correlationId?: string;
  /** The id of the message that caused this one. */
  causationId?: string;
  [key: string]: unknown;
}

/** An event as a domain emits it: a past-tense fact. */
export interface Event<Type extends string = string, Data = unknown> {
  type: Type;
  data: Data;
  metadata?: EventMetadata;
}

/** What a caller appends: an event, optionally with its own id and schema version. */
export interface EventToAppend<Type extends string = string, Data = unknown> extends Event<Type, Data> {
  /** A unique id; a UUIDv7 is generated when absent. Re-using it makes the append idempotent. */
  id?: string;
  /** The version of this event type's schema; 1 when absent. */
  schemaVersion?: number;
}

/** An event as the store returns it. */
export interface RecordedEvent<Type extends string = string, Data = unknown> extends Event<Type, Data> {
  id: string;
  metadata: EventMetadata;
  streamId: string;
  /** 1-based, contiguous within the stream. */
  streamVersion: number;
  /** Totally ordered across the store; resume `readAll` after it. */
  position: number;
  recordedAt: Date;
  schemaVersion: number;
}

/**
 * The recorded form of each member of an event union, kept apart by `type`
 * so that checking `event.type` narrows `event.data`.
 */
export type RecordedOf<E extends Event> = E extends Event ? RecordedEvent<E['type'], E['data']> : never;

/**
 * The version a writer expects the stream to be at:
 * - a number: the stream's version after its last event (0 = no stream yet);
 * - `'no-stream'`: the stream must not exist (same as 0);
 * - `'stream-exists'`: the stream must have at least one event;
 * - `'any'`: no check.
 */
export type ExpectedVersion = number | 'no-stream' | 'stream-exists' | 'any';

export interface AppendOptions {
  /** Default `'any'`. */
  expectedVersion?: ExpectedVersion;
}

export interface AppendResult {
  streamId: string;
  /** The stream's version after this append: pass it as the next `expectedVersion`. */
  version: number;
  /** The global position of the last event appended. */
  position: number;
  /** The events as stored (ids, versions, positions filled in). */
  events: RecordedEvent[];
}

export type ReadDirection = 'forwards' | 'backwards';

export interface ReadStreamOptions {
  /** First stream version to return (inclusive). Default: the first one. */
  from?: number;
  /** Last stream version to return (inclusive). Default: the last one. */
  to?: number;
  /** Default `'forwards'`; backwards starts at `to` (or the end) and walks down to `from`. */
  direction?: ReadDirection;
  /** Most events to return. */
  limit?: number;
}

export interface ReadStreamResult<E extends Event = Event> {
  streamId: string;
  /** Whether the stream exists (has been appended to and is not deleted). */
  exists: boolean;
  /** The stream's current version: pass it as `expectedVersion`. 0 when it does not exist. */
  version: number;
  events: RecordedOf<E>[];
}

export interface ReadAllOptions {
  /** Start at this position (inclusive). Use either `from` or `after`. */
  from?: number;
  /** Start after this position (exclusive): the form to resume from a checkpoint. */
  after?: number;
  /** Stop after this many events. */
  limit?: number;
  /** Only events of these types. */
  types?: readonly string[];
  /** Only events whose stream's category (the part of its id before the first `-`) is one of these. */
  categories?: readonly string[];
  /** Events fetched per page (the iterator never holds more than one page). Default 1000. */
  batchSize?: number;
}

export type DeleteMode = 'soft' | 'hard';

export interface DeleteStreamOptions {
  /**
   * `'soft'` (default): the events are removed and the stream can be started again from version 1.
   * `'hard'`: the events are removed and the stream id is tombstoned: every later read
   * or append throws `StreamDeletedError`.
   */
  mode?: DeleteMode;
  /** Checked like an append's. Default `'any'`. */
  expectedVersion?: ExpectedVersion;
}

export interface StreamInfo {
  streamId: string;
  exists: boolean;
  /** The version of the stream's last event (0 when it has none). */
  version: number;
  /** Events before this version were truncated away (1 = nothing truncated). */
  truncatedBefore: number;
  /** True when the stream was hard-deleted. */
  tombstoned: boolean;
}

export interface EventStore {
  /**
   * Appends events to one stream, atomically, checking `expectedVersion`.
   *
   * @example
   * const { version } = await store.append('order-42', [{ type: 'OrderPlaced', data: { total: 30 } }], {
   *   expectedVersion: 'no-stream',
   * });
   */
  append(streamId: string, events: readonly EventToAppend[], options?: AppendOptions): Promise<AppendResult>;

  /**
   * Reads one stream. A stream that never existed reads as `{ exists: false, version: 0, events: [] }`.
   * `E` is the event union the caller declares for the stream; the store does not check it.
   *
   * @example
   * const { events } = await store.readStream<CartEvent>('cart-1');
   */
  readStream<E extends Event = Event>(streamId: string, options?: ReadStreamOptions): Promise<ReadStreamResult<E>>;

  /**
   * Reads the global log in position order, one page at a time.
   *
   * @example
   * for await (const event of store.readAll<OrderEvent>({ after: checkpoint, types: ['OrderPlaced'] })) {
   *   checkpoint = event.position;
   * }
   */
  readAll<E extends Event = Event>(options?: ReadAllOptions): AsyncIterable<RecordedOf<E>>;

  /** The position of the last event in the log (0 when empty). */
  headPosition(): Promise<number>;

  /** What the store knows of a stream, or `undefined` if it never existed. */
  streamInfo(streamId: string): Promise<StreamInfo | undefined>;

  /** Deletes a stream (soft by default, see {@link DeleteStreamOptions}). Throws `StreamNotFoundError` if absent. */
  deleteStream(streamId: string, options?: DeleteStreamOptions): Promise<void>;

  /**
   * Removes the stream's events before `version` (they vanish from every read);
   * the stream's version and its later events stay. Throws `StreamNotFoundError` if absent.
   */
  truncateBefore(streamId: string, version: number): Promise<void>;

  /** Finishes pending appends, then releases the store's resources. Later calls throw `StoreClosedError`. */
  close(): Promise<void>;
}
