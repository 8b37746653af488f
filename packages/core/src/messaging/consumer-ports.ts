import { isFactlineError } from '../errors/index.ts';
import { checkOptions, describeValue, MAX_TIMER_MS } from '../options/check-options.ts';
import { storableFailureText } from '../store/json-checks.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

/**
 * What to do with a message whose handler failed. A retry's `delayMs` is from 0 to
 * 2147483647 (`MAX_RETRY_DELAY_MS`): a policy answering more fails (stage `'policy'`).
 */
export type RetryDecision =
  | { action: 'retry'; delayMs: number }
  | { action: 'dead-letter'; reason: string }
  | { action: 'discard' };

/**
 * The longest retry delay, in ms: a timer's limit (`MAX_TIMER_MS`, 2^31 - 1 ms, about 24.8 days).
 * Node fires a longer timer after 1 ms.
 */
export const MAX_RETRY_DELAY_MS = MAX_TIMER_MS;

/** Whether `value` is a retry delay: a number of ms from 0 to `MAX_RETRY_DELAY_MS`. */
export const isRetryDelay = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_RETRY_DELAY_MS;

/** `attempt` counts the handler runs so far for this message (1 after the first failure). */
export type RetryPolicy = (error: unknown, attempt: number, message: Message) => RetryDecision;

/** True for errors no retry can fix: `NonRetryableError`, or any Factline error with `retryable: false`. */
export function isNonRetryable(error: unknown): boolean {
  return isFactlineError(error) && !error.retryable;
}

export interface DefaultRetryPolicyOptions {
  /** Retries right away first. Default 2. */
  immediate?: number;
  /** Then delayed retries, one per entry (each at most 2147483647 ms). Default 1 s, 5 s, 30 s. */
  delaysMs?: readonly number[];
  /** ± this fraction of random spread on each delay. Default 0.2. */
  jitter?: number;
  random?: () => number;
}

/**
 * The default policy: a few immediate retries, then delayed retries on a
 * schedule with jitter, then the dead-letter queue; errors that are not
 * retryable go to the dead-letter queue at once.
 */
export function defaultRetryPolicy(options: DefaultRetryPolicyOptions = {}): RetryPolicy {
  checkOptions(
    options,
    {
      immediate: 'non-negative-integer',
      delaysMs: (value) =>
        Array.isArray(value) && value.every(isRetryDelay)
          ? undefined
          : `must be an array of ms from 0 to ${MAX_RETRY_DELAY_MS}, got ${describeValue(value)}`,
      jitter: (value) =>
        typeof value === 'number' && value >= 0 && value <= 1
          ? undefined
          : `must be a number from 0 to 1, got ${describeValue(value)}`,
      random: 'function',
    },
    'defaultRetryPolicy',
  );
  const immediate = options.immediate ?? 2;
  const delays = options.delaysMs ?? [1000, 5000, 30_000];
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  return (error, attempt) => {
    if (isNonRetryable(error)) return { action: 'dead-letter', reason: 'not retryable' };
    if (attempt <= immediate) return { action: 'retry', delayMs: 0 };
    const delay = delays[attempt - immediate - 1];
    if (delay === undefined) return { action: 'dead-letter', reason: `failed ${attempt} times` };
    const jittered = Math.round(delay * (1 + jitter * (2 * random() - 1)));
    return { action: 'retry', delayMs: Math.min(MAX_RETRY_DELAY_MS, Math.max(0, jittered)) };
  };
}

export interface DeadLetterError {
  /** The error's class name (`name`). */
  type: string;
  message: string;
  stack?: string;
}

export interface DeadLetter {
  /** This record's id. */
  id: string;
  consumer: string;
  topic: string;
  /** The original envelope, unchanged. */
  message: Message;
  error: DeadLetterError;
  reason: string;
  /** Handler runs before it was dead-lettered. */
  attempts: number;
  firstFailureAt: Date;
  lastFailureAt: Date;
  deadLetteredAt: Date;
  /** Earlier redrives of this record (it is kept, with its history, after a redrive). */
  redrives: Date[];
  state: 'dead' | 'redriven' | 'discarded';
}

export interface DeadLetterFilter {
  consumer?: string;
  topic?: string;
  type?: string;
  /** Substring of the error message, or the error type. */
  error?: string;
  since?: Date;
  until?: Date;
  /** Default: only `'dead'`. */
  state?: DeadLetter['state'];
}

/** Where a consumer keeps its dead letters. In memory here; SQL stores keep them in a table. */
export interface DeadLetterStore {
  /**
   * Keeps `record`. While a `'dead'` record of the same consumer, topic and
   * message id exists, that record takes `record`'s failure instead
   * (`refreshedDeadLetter`: its id, state and redrives kept): one live record
   * per message and topic, with its last failure (a group consuming two
   * topics may see one message on both). A message redriven that fails again before the redrive
   * recorded itself is dead again that way, not lost.
   */
  add(record: DeadLetter): Promise<void>;
  list(filter?: DeadLetterFilter): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
  /**
   * Writes `record` (a redrive or a discard of a record read before) while the
   * stored one is still what it was read from: `'dead'`, with the same
   * `deadLetteredAt`. Resolves whether it wrote: a record redriven or
   * discarded meanwhile, or dead again with a newer failure, stays as it is.
   *
   * Given `read`, the record as it was read (or as an update wrote it), writes
   * while the stored one is still that: the same state, `deadLetteredAt` and
   * redrives (`deadLetterIsAsRead`); a redrive whose delivery failed puts its
   * record back to `'dead'` that way. A `'dead'` record is not written while
   * another record of its message (consumer, topic, message id) is live.
   */
  update(record: DeadLetter, read?: DeadLetter): Promise<boolean>;
}

/**
 * Whether `stored` is still the record `read` (what an update compares): the
 * same state, `deadLetteredAt` and redrives. Given no `read`: `'dead'` with
 * `record`'s `deadLetteredAt`.
 */
export function deadLetterIsAsRead(stored: DeadLetter, record: DeadLetter, read?: DeadLetter): boolean {
  if (!read) return stored.state === 'dead' && stored.deadLetteredAt.getTime() === record.deadLetteredAt.getTime();
  return (
    stored.state === read.state &&
    stored.deadLetteredAt.getTime() === read.deadLetteredAt.getTime() &&
    stored.redrives.length === read.redrives.length &&
    stored.redrives.every((at, i) => at.getTime() === read.redrives[i]?.getTime())
  );
}

/** The redrive times of `record` as the SQL and Redis stores compare them: a JSON array of ISO strings. */
export const deadLetterRedrivesJson = (record: DeadLetter): string =>
  JSON.stringify(record.redrives.map((at) => at.toISOString()));

/**
 * The live dead letter `live` after its message failed again as `next`
 * says: `next`'s failure, with `live`'s id, redrives and state.
 */
export function refreshedDeadLetter(live: DeadLetter, next: DeadLetter): DeadLetter {
  return { ...next, id: live.id, redrives: [...live.redrives], state: live.state };
}

/**
 * Message ids a consumer has applied, kept for a retention window.
 *
 * An inbox in a database implements `applyOnce`: the consumer then runs the
 * handler through it, inside one transaction that also writes the mark, and
 * passes the handler that transaction (`Tx`). The handler's writes and the
 * mark commit together or not at all, so a message is applied once even when
 * the process dies between the handler and the ack.
 */
export interface Inbox<Tx = undefined> {
  has(consumer: string, messageId: string): Promise<boolean>;
  add(consumer: string, messageId: string, at: Date): Promise<void>;
  /**
   * Forgets `consumer`'s marks older than `before`. Other consumers' marks
   * stay: each consumer prunes its own, by its own retention.
   */
  prune(before: Date, consumer: string): Promise<void>;
  /**
   * Opens a transaction, writes the mark for (`consumer`, `messageId`) and runs
   * `work` with the transaction, then commits. Resolves `false` without
   * running `work` when the mark exists already (a duplicate). When `work`
   * throws, the transaction rolls back (mark included) and the error is
   * rethrown as it is. `delivery` is the transport's delivery of the message:
   * an inbox in the same database as the transport may settle it (ack) in
   * the same transaction, saving the separate commit of the ack. An inbox
   * whose handlers run synchronously in group commits may call `queued`
   * once the run joined a group other runs share: the run then waits for
   * that group's (short, synchronous) run and commit only, and the consumer
   * lets another key start meanwhile, so one commit covers more runs than
   * the consumer has lanes.
   */
  applyOnce?(
    consumer: string,
    messageId: string,
    at: Date,
    work: (tx: Tx) => unknown,
    delivery?: Delivery,
    queued?: () => void,
  ): Promise<boolean>;
}

export function getInMemoryInbox(): Inbox {
  // Per consumer, its marks by message id: no key string built per look-up.
  const marks = new Map<string, Map<string, number>>();
  return {
    async has(consumer, id) {
      return marks.get(consumer)?.has(id) ?? false;
    },
    async add(consumer, id, at) {
      let own = marks.get(consumer);
      if (!own) {
        own = new Map();
        marks.set(consumer, own);
      }
      own.set(id, at.getTime());
    },
    async prune(before, consumer) {
      const own = marks.get(consumer);
      if (own) for (const [id, at] of own) if (at < before.getTime()) own.delete(id);
    },
  };
}

/** Whether `record` is one `filter` selects (state `'dead'` when the filter names none), as every store reads it. */
export const deadLetterMatches = (record: DeadLetter, filter: DeadLetterFilter): boolean =>
  record.state === (filter.state ?? 'dead') &&
  (filter.consumer === undefined || record.consumer === filter.consumer) &&
  (filter.topic === undefined || record.topic === filter.topic) &&
  (filter.type === undefined || record.message.type === filter.type) &&
  (filter.error === undefined || record.error.type === filter.error || record.error.message.includes(filter.error)) &&
  (filter.since === undefined || record.deadLetteredAt >= filter.since) &&
  (filter.until === undefined || record.deadLetteredAt <= filter.until);

/** `record` with its failure's text (error type, message and stack, reason) as stores keep it (`storableFailureText`). */
export function storableDeadLetter(record: DeadLetter): DeadLetter {
  const { error } = record;
  return {
    ...record,
    error: {
      ...error,
      type: storableFailureText(error.type),
      message: storableFailureText(error.message),
      ...(error.stack === undefined ? {} : { stack: storableFailureText(error.stack) }),
    },
    reason: storableFailureText(record.reason),
  };
}

export function getInMemoryDeadLetterStore(): DeadLetterStore {
  const records = new Map<string, DeadLetter>();
  const copy = (r: DeadLetter): DeadLetter => ({ ...r, redrives: [...r.redrives] });
  const keep = (r: DeadLetter): DeadLetter => copy(storableDeadLetter(r));
  return {
    async add(record) {
      // One live dead letter per consumer, topic and message, as in the SQL stores: a new failure refreshes it.
      for (const r of records.values()) {
        if (
          r.state === 'dead' &&
          r.consumer === record.consumer &&
          r.topic === record.topic &&
          r.message.id === record.message.id
        ) {
          records.set(r.id, keep(refreshedDeadLetter(r, record)));
          return;
        }
      }
      if (!records.has(record.id)) records.set(record.id, keep(record));
    },
    async list(filter = {}) {
      return [...records.values()].filter((r) => deadLetterMatches(r, filter)).map(copy);
    },
    async get(id) {
      const found = records.get(id);
      return found && copy(found);
    },
    async update(record, read) {
      const stored = records.get(record.id);
      // Only the record as it was read: by default still dead, with the same failure time.
      if (!stored || !deadLetterIsAsRead(stored, record, read)) return false;
      // One live record per message: another one dead meanwhile holds it.
      if (record.state === 'dead' && stored.state !== 'dead') {
        for (const r of records.values()) {
          if (
            r.state === 'dead' &&
            r.consumer === record.consumer &&
            r.topic === record.topic &&
            r.message.id === record.message.id
          ) {
            return false;
          }
        }
      }
      records.set(record.id, keep(record));
      return true;
    },
  };
}

/** True when `value` looks like a promise (a handler that was meant to be synchronous returned one). */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
