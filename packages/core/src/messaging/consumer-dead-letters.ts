import { TransportError, ValidationError } from '../errors/index.ts';
import { uuidv7 } from '../ids/uuid-v7.ts';
import { noteSettle } from '../tracing/messaging-spans.ts';
import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterStore,
  deadLetterIsAsRead,
  getInMemoryDeadLetterStore,
  storableDeadLetter,
} from './consumer-ports.ts';
import { step } from './consumer-step.ts';
import type { Message } from './message.ts';
import type { Delivery, Transport } from './transport.ts';

/**
 * A consumer's view of its dead letters (`consumer.deadLetters`): the records
 * of its group on its topic only. An id of another group's or topic's record
 * is not found; a filter naming another group or topic selects none.
 */
export interface ConsumerDeadLetters {
  list(filter?: DeadLetterFilter): Promise<DeadLetter[]>;
  show(id: string): Promise<DeadLetter | undefined>;
  /**
   * Delivers dead letters to this consumer again (attempts start over; each
   * record is kept, marked `redriven`, with the redrive's time). Returns how
   * many were redriven. Each record is read again, its message sent while it
   * is still as selected, then the record marked (`redriveDeadLetter`): one
   * redriven, discarded or dead again with a newer failure since it was
   * selected is neither sent nor counted. A redelivery that fails leaves its
   * record dead and rejects with its error: the records before it stay
   * redriven, the ones after it are not tried.
   */
  redrive(selection: string | readonly string[] | DeadLetterFilter): Promise<number>;
  /**
   * Marks dead letters as discarded (kept for the record, never delivered).
   * Returns how many were discarded: one redriven, discarded or dead again
   * with a newer failure since it was selected stays as it is.
   */
  discard(selection: string | readonly string[] | DeadLetterFilter): Promise<number>;
}

/**
 * The store a consumer keeps its dead letters in, resolved once: the one
 * given; else, on a durable transport, the transport's default store (one
 * that survives restarts); else, on a non-durable transport, one in memory.
 * A durable transport without a default store needs one given: refused at
 * creation, so a dead letter is never kept only in memory next to durable
 * messages.
 */
export function deadLetterStoreFor(
  given: DeadLetterStore | undefined,
  transport: Transport,
): () => Promise<DeadLetterStore> {
  if (given) return () => Promise.resolve(given);
  if (transport.capabilities?.durable === false) {
    const memory = getInMemoryDeadLetterStore();
    return () => Promise.resolve(memory);
  }
  const fromTransport = transport.defaultDeadLetterStore?.bind(transport);
  if (!fromTransport) {
    throw new ValidationError({
      path: 'createConsumer.deadLetters',
      message:
        'is required: the transport is durable and offers no default dead-letter store, and dead letters kept in memory would be lost on restart',
    });
  }
  let resolved: Promise<DeadLetterStore> | undefined;
  return () => {
    // A failed look-up (database unreachable) is tried again next time.
    resolved ??= fromTransport().catch((error: unknown) => {
      resolved = undefined;
      throw error;
    });
    return resolved;
  };
}

const describeError = (error: unknown) =>
  error instanceof Error
    ? { type: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) }
    : { type: typeof error, message: String(error) };

/** The record a consumer keeps for a message it gives up on. */
export function deadLetterRecord(
  consumer: string,
  topic: string,
  message: Message,
  failure: DeadLetterFailure & { at: number },
): DeadLetter {
  const at = new Date(failure.at);
  // The failure's text as every store keeps it (a store of one's own too).
  return storableDeadLetter({
    id: uuidv7(),
    consumer,
    topic,
    message,
    error: describeError(failure.error),
    reason: failure.reason,
    attempts: failure.attempts,
    firstFailureAt: new Date(failure.firstFailureAt),
    lastFailureAt: at,
    deadLetteredAt: at,
    redrives: [],
    state: 'dead',
  });
}

/** How a message failed, for its dead-letter record. */
export interface DeadLetterFailure {
  error: unknown;
  reason: string;
  attempts: number;
  /** When its first try failed (ms since the epoch). */
  firstFailureAt: number;
}

export interface DeadLetterStepSettings {
  /** The consumer's name (its group). */
  name: string;
  topic: string;
  store: () => Promise<DeadLetterStore>;
  now: () => number;
  stats: { deadLettered: number };
}

/**
 * Step 2 of the pipeline, dead-letter on exhaustion: keeps the message with
 * its failure in the dead-letter store, then acknowledges the delivery; a
 * failure of either rejects with a `StepFailure` (`'dead-letter'`, `'ack'`)
 * and the message comes back later.
 *
 * @example
 * const deadLetter = deadLetterStep({ name, topic, store: deadLetterStoreFor(undefined, transport), now, stats });
 * await deadLetter(delivery, { error, reason: 'not retryable', attempts: 1, firstFailureAt: now() });
 */
export function deadLetterStep(settings: DeadLetterStepSettings) {
  const { name, topic, store, now, stats } = settings;
  return async (delivery: Delivery, failure: DeadLetterFailure): Promise<void> => {
    const record = deadLetterRecord(name, topic, delivery.message, { ...failure, at: now() });
    await step('dead-letter', async () => (await store()).add(record));
    await step('ack', () => delivery.ack());
    stats.deadLettered += 1;
    noteSettle('dead-letter', failure.error);
  };
}

/**
 * Redrives `record` (read from `store` as `'dead'`) through `send`, which
 * delivers its message: reads it again and sends only while it is still as
 * read, then marks it `redriven` at `at` (a compare-and-set on the record as
 * read). Resolves false, sending nothing, when the record changed since it
 * was read (redriven or discarded elsewhere, or dead again with a newer
 * failure). Sent before it is marked, so that no crash or failure between the
 * two leaves a record marked with its message undelivered: a failed `send`
 * rejects with its error and leaves the record dead; a mark that fails
 * rejects with a `TransportError` saying the message went and the record
 * stays dead. A message that failed again before the mark leaves its record
 * dead with the new failure, the redrive added to its history (resolves
 * true); a record another redrive marked at the same moment resolves false
 * (both sent: the inbox drops the copy); one discarded between the send and
 * the mark rejects with a `TransportError` saying its message was sent. The
 * consumer's `deadLetters.redrive` and the CLI's redrives (`factline dlq
 * redrive`, the dashboard) go through it.
 *
 * @example
 * const sent = await redriveDeadLetter(store, record, new Date(), () => transport.redeliver(record.topic, record.consumer, [record.message]));
 */
export async function redriveDeadLetter(
  store: DeadLetterStore,
  record: DeadLetter,
  at: Date,
  send: () => Promise<void>,
): Promise<boolean> {
  // Read again just before the send: a record an operator discarded (or redrove) since it was listed is not sent.
  const current = await store.get(record.id);
  if (current === undefined || !deadLetterIsAsRead(current, record, record)) return false;
  await send();
  const marked: DeadLetter = { ...record, state: 'redriven', redrives: [...record.redrives, at] };
  let written: boolean;
  try {
    written = await store.update(marked, record);
  } catch (error) {
    throw new TransportError(
      `the message of dead letter '${record.id}' was redriven, but marking its record failed (${error instanceof Error ? error.message : String(error)}): it stays dead, and a later redrive sends the message again`,
      { cause: error, retryable: false },
    );
  }
  if (written) return true;
  const now = await store.get(record.id);
  if (now?.state === 'dead') {
    // Delivered and failed again before the mark: its record is dead again with that failure (one live record per
    // message); the redrive goes into its history.
    await store.update({ ...now, redrives: [...now.redrives, at] }, now);
    return true;
  }
  // Redriven by another redrive at the same moment (both sent: the inbox drops the copy) or discarded meanwhile.
  if (now?.state === 'redriven') return false;
  throw new TransportError(
    `the message of dead letter '${record.id}' was redriven, but its record was discarded meanwhile`,
    { retryable: false },
  );
}

/**
 * `consumer.deadLetters`: the records of the consumer's group and topic in `store` (a group may consume other
 * topics too; their records are not this consumer's), redriven through `transport` to its group only.
 */
export function consumerDeadLetters(
  consumer: string,
  topic: string,
  transport: Transport,
  store: () => Promise<DeadLetterStore>,
  now: () => number,
): ConsumerDeadLetters {
  const own = (record: DeadLetter | undefined): record is DeadLetter =>
    record?.consumer === consumer && record.topic === topic;
  /** `filter` within the consumer's records: one naming another group or topic selects none. */
  const within = async (filter: DeadLetterFilter): Promise<DeadLetter[]> => {
    if ((filter.consumer ?? consumer) !== consumer || (filter.topic ?? topic) !== topic) return [];
    return (await store()).list({ ...filter, consumer, topic });
  };
  const select = async (selection: string | readonly string[] | DeadLetterFilter): Promise<DeadLetter[]> => {
    if (typeof selection === 'string' || Array.isArray(selection)) {
      const records = await store();
      const ids = typeof selection === 'string' ? [selection] : (selection as readonly string[]);
      const found = await Promise.all(ids.map((id) => records.get(id)));
      return found.filter((r): r is DeadLetter => own(r) && r.state === 'dead');
    }
    return within({ ...(selection as DeadLetterFilter), state: 'dead' });
  };
  return {
    list: (filter = {}) => within(filter),
    async show(id) {
      const record = await (await store()).get(id);
      return own(record) ? record : undefined;
    },
    async redrive(selection) {
      const records = await select(selection);
      const target = await store();
      let redriven = 0;
      for (const record of records) {
        const send = () => transport.redeliver(topic, consumer, [record.message]);
        if (await redriveDeadLetter(target, record, new Date(now()), send)) redriven += 1;
      }
      return redriven;
    },
    async discard(selection) {
      const records = await select(selection);
      const target = await store();
      let discarded = 0;
      // A record redriven, discarded or dead again meanwhile stays as it is.
      for (const record of records) if (await target.update({ ...record, state: 'discarded' })) discarded += 1;
      return discarded;
    },
  };
}
