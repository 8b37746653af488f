import { ValidationError } from '../errors/index.ts';
import { type Logger, loggerKind } from '../logging/logger.ts';
import { checkOptions, describeValue, type OptionSpec } from '../options/check-options.ts';
import { schemasOption } from '../options/core-options.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import { systemOf } from '../tracing/messaging-spans.ts';
import type { ProducerSpanRelation } from '../tracing/span-relation.ts';
import { deadLetterStoreFor } from './consumer-dead-letters.ts';
import {
  type DeadLetterStore,
  defaultRetryPolicy,
  getInMemoryInbox,
  type Inbox,
  isNonRetryable,
  isRetryDelay,
  MAX_RETRY_DELAY_MS,
  type RetryPolicy,
} from './consumer-ports.ts';
import type { Message } from './message.ts';
import type { Transport } from './transport.ts';

/** `M`: the messages the topic carries (a union of `Message<Type, Data>`, e.g. `MessageOf<CartEvent>`), unchecked. */
export interface ConsumerOptions<Tx = undefined, M extends Message = Message> {
  /** The consumer group: every group of a topic gets every message. Also names its inbox and dead letters. */
  name: string;
  topic: string;
  transport: Transport;
  /**
   * Handles one message. With an inbox that has `applyOnce` (the SQL inboxes),
   * `tx` is the inbox's open transaction: write through it and the writes
   * commit with the inbox mark. Otherwise `tx` is `undefined`.
   */
  handler: (message: M, tx: Tx) => unknown;
  /**
   * Default: `defaultRetryPolicy()` (2 immediate retries, then 1 s, 5 s, 30 s
   * with jitter, then dead-letter). A policy that throws or returns no
   * `RetryDecision` is reported (stage `'policy'`) and the message is
   * dead-lettered.
   */
  retryPolicy?: RetryPolicy;
  /** Shorthand for a policy: retries after the first failure, then dead-letter. See `retryPolicyFromShorthand`. */
  maxRetries?: number;
  /**
   * Shorthand for a policy: ms before each retry, one number or a schedule (`[1000, 5000, 30000]`),
   * each at most 2147483647 (about 24.8 days).
   */
  retryDelay?: number | readonly number[];
  /**
   * A message handed out more often than this (`deliveryCount`) without being settled is dead-lettered
   * without running the handler: each consumer that had it crashed or hung on it (a poison message that
   * takes its process down would otherwise be redelivered, and take the next one down, for ever).
   * Every hand-out counts: one given back at a stop too, and each delayed retry sent through the
   * transport. Default: no bound.
   */
  maxDeliveries?: number;
  /**
   * Default: on a durable transport, its `defaultDeadLetterStore()` (the SQL
   * transports: a table in their own database), so dead letters survive a
   * restart; on the in-memory transport, memory.
   */
  deadLetters?: DeadLetterStore;
  /** Default: in memory (this process only). The SQL inboxes record the mark in the handler's transaction. */
  inbox?: Inbox<Tx>;
  /** How long applied message ids are remembered. Default 7 days. */
  inboxRetentionMs?: number;
  /** Keys handled at the same time. Default 8. */
  concurrency?: number;
  /**
   * While a key's message waits for a delayed retry: `'wait'` (default) holds
   * the key's later messages back, keeping its order; `'dead-letter'` sends
   * the failing message to the dead-letter queue instead of waiting, and the
   * key moves on.
   */
  onDelayedRetry?: 'wait' | 'dead-letter';
  /** How long a delivery stays invisible to other consumers while handled, in ms: a whole number from 1 to 2147483647. Default 30 s. */
  visibilityTimeoutMs?: number;
  /** Longest wait for new messages per fetch, in ms: a whole number from 1 to 2147483647. Default 1000 ms. */
  pollMs?: number;
  /** How long `stop` waits for handlers in flight, and then for giving messages back, in ms (0 to 2147483647). Default 10 s. */
  drainTimeoutMs?: number;
  /**
   * Told every failure: a receive, a handler run, the inbox, the dead-letter
   * store, a settle (ack, release, extend), the inbox pruning, the retry
   * policy. A hook that throws changes nothing.
   */
  onError?: (error: unknown, context: ConsumerErrorContext) => void;
  /**
   * The application's message and event types: each message is decoded to
   * its type's current version before the handler gets it (a message relayed
   * from an event, with a `factline-stream-id` header, by the event types).
   * A message that cannot be decoded is a handler failure (retried, then
   * dead-lettered). Default: none, messages are handled as received.
   */
  schemas?: SchemaRegistry;
  /**
   * Told what `onError` is told (`warn` for a handler failure the policy
   * decides on, `error` for the others), with the consumer, stage and
   * message id. Pino's shape. Default: no output.
   */
  logger?: Logger;
  /**
   * With OpenTelemetry: each message's process span LINKS to the span that
   * produced it (`'link'`, the default: a trace per hop, connected by links,
   * as the messaging conventions advise for async hops), or is its CHILD
   * (`'parent'`: one trace across the hop, for single-message flows).
   */
  producerSpan?: ProducerSpanRelation;
  /** Injected for tests (also paces the back-off after a failed receive). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

/** Where in the consumer a reported failure happened. */
export type ConsumerErrorStage =
  /** `start()` failed: the dead-letter store, the subscription's declaration or the transport's `subscribe`. */
  'start' | 'receive' | 'handler' | 'inbox' | 'dead-letter' | 'ack' | 'release' | 'extend' | 'prune' | 'policy';

/** What `onError` is told with each failure. */
export interface ConsumerErrorContext {
  /** The consumer's name (its group). */
  consumer: string;
  stage: ConsumerErrorStage;
  /** The message being worked on, when the failure concerns one. */
  message?: Message;
}

const retryDelayKind = (value: unknown) => {
  if (isRetryDelay(value)) return undefined;
  if (Array.isArray(value) && value.length > 0 && value.every(isRetryDelay)) return undefined;
  return `must be a number of ms from 0 to ${MAX_RETRY_DELAY_MS} (about 24.8 days) or a non-empty array of them, got ${describeValue(value)}`;
};

/** An object with every required method of `port`: a missing one is named (it failed only once called). */
const portKind = (port: string, methods: readonly string[]) => (value: unknown) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `must be ${port} (with ${methods.join(', ')}), got ${describeValue(value)}`;
  }
  const missing = methods.filter((method) => typeof (value as Record<string, unknown>)[method] !== 'function');
  if (missing.length === 0) return undefined;
  return `must be ${port}: it has no ${missing.join(', ')} (${missing.length === 1 ? 'a method' : 'methods'} of the port)`;
};

const retryPolicyKind = (value: unknown) => {
  if (typeof value === 'function') return undefined;
  if (Array.isArray(value)) {
    return 'must be a function (error, attempt, message) => RetryDecision, got an array; for a schedule of delays use `retryDelay` (and `maxRetries`)';
  }
  return `must be a function (error, attempt, message) => RetryDecision, got ${describeValue(value)}`;
};

/** What `createConsumer` accepts, by name (unknown names and wrong kinds are a `ValidationError`). */
export const consumerOptionSpec: OptionSpec = {
  name: 'non-empty-string',
  topic: 'non-empty-string',
  transport: (value) =>
    typeof value === 'object' && value !== null && typeof (value as { subscribe?: unknown }).subscribe === 'function'
      ? undefined
      : `must be a transport (with subscribe, publish, redeliver), got ${describeValue(value)}`,
  handler: 'function',
  retryPolicy: retryPolicyKind,
  maxRetries: 'non-negative-integer',
  retryDelay: retryDelayKind,
  maxDeliveries: 'positive-integer',
  deadLetters: portKind('a DeadLetterStore', ['add', 'list', 'get', 'update']),
  inbox: portKind('an Inbox', ['has', 'add', 'prune']),
  inboxRetentionMs: 'non-negative-number',
  concurrency: 'positive-integer',
  onDelayedRetry: { oneOf: ['wait', 'dead-letter'] },
  visibilityTimeoutMs: 'timer-ms',
  pollMs: 'timer-ms',
  drainTimeoutMs: 'delay-ms',
  onError: 'function',
  schemas: schemasOption,
  logger: loggerKind,
  producerSpan: { oneOf: ['link', 'parent'] },
  sleep: 'function',
  now: 'function',
};

/** The shorthand's meaning, for one failed attempt. */
export interface RetryShorthand {
  /** Retries after the first failure before the message is dead-lettered. */
  maxRetries?: number;
  /** Ms before each retry: one number for all, or one per retry (the last one repeats). */
  retryDelay?: number | readonly number[];
}

/**
 * The policy `maxRetries` and `retryDelay` stand for: retry `n` (1-based)
 * waits `retryDelay[n - 1]` (the last entry repeats; a number is every
 * retry's delay); after `maxRetries` retries the message is dead-lettered.
 * Defaults: `retryDelay` `[1000, 5000, 30000]`, `maxRetries` the schedule's
 * length (3 for a single number). Errors that are not retryable go to the
 * dead-letter queue at once. No jitter: the delays are exact.
 *
 * @example
 * createConsumer({ ...options, maxRetries: 3, retryDelay: [1000, 5000, 30000] });
 */
export function retryPolicyFromShorthand(shorthand: RetryShorthand): RetryPolicy {
  const delays =
    typeof shorthand.retryDelay === 'number'
      ? [shorthand.retryDelay]
      : [...(shorthand.retryDelay ?? [1000, 5000, 30_000])];
  const maxRetries = shorthand.maxRetries ?? (typeof shorthand.retryDelay === 'number' ? 3 : delays.length);
  return (error, attempt) => {
    if (isNonRetryable(error)) return { action: 'dead-letter', reason: 'not retryable' };
    if (attempt > maxRetries) return { action: 'dead-letter', reason: `failed ${attempt} times` };
    return { action: 'retry', delayMs: delays[Math.min(attempt, delays.length) - 1] as number };
  };
}

/**
 * Checks `createConsumer`'s options: one `ValidationError` naming every
 * unknown option, wrong kind and conflict, before anything starts.
 */
export function checkConsumerOptions(options: unknown): void {
  checkOptions(options, consumerOptionSpec, 'createConsumer', { required: ['name', 'topic', 'transport', 'handler'] });
  const o = options as Record<string, unknown>;
  const shorthand = ['maxRetries', 'retryDelay'].filter((key) => o[key] !== undefined);
  if (o.retryPolicy !== undefined && shorthand.length > 0) {
    throw new ValidationError({
      path: `createConsumer.${shorthand[0]}`,
      message: 'give either retryPolicy or the maxRetries/retryDelay shorthand, not both',
    });
  }
}

/** Why `decision` is not a `RetryDecision`, or `undefined` when it is one. */
export function retryDecisionProblem(decision: unknown): string | undefined {
  const d = decision as Partial<Record<string, unknown>> | null;
  if (typeof d !== 'object' || d === null) return `the retry policy returned ${describeValue(decision)}`;
  if (d.action === 'discard') return undefined;
  if (d.action === 'dead-letter' && typeof d.reason === 'string') return undefined;
  if (d.action === 'retry' && isRetryDelay(d.delayMs)) return undefined;
  if (d.action === 'retry' && typeof d.delayMs === 'number' && d.delayMs > MAX_RETRY_DELAY_MS) {
    return `the retry policy returned delayMs ${d.delayMs}: a retry waits at most ${MAX_RETRY_DELAY_MS} ms (about 24.8 days)`;
  }
  return `the retry policy returned ${JSON.stringify(decision)}, not a RetryDecision ({ action: 'retry', delayMs }, { action: 'dead-letter', reason } or { action: 'discard' })`;
}

const abortableSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** `createConsumer`'s options (checked) with the defaults documented on `ConsumerOptions`. */
export function resolveConsumerOptions<Tx, M extends Message>(options: ConsumerOptions<Tx, M>) {
  return {
    policy:
      options.retryPolicy ??
      (options.maxRetries !== undefined || options.retryDelay !== undefined
        ? retryPolicyFromShorthand(options)
        : defaultRetryPolicy()),
    deadLetterStore: deadLetterStoreFor(options.deadLetters, options.transport),
    inbox: options.inbox ?? (getInMemoryInbox() as Inbox<Tx>),
    retentionMs: options.inboxRetentionMs ?? 7 * 24 * 3600 * 1000,
    concurrency: options.concurrency ?? 8,
    holdOnDelay: (options.onDelayedRetry ?? 'wait') === 'wait',
    keepDelayOnStop: options.transport.capabilities?.delayedReleaseHoldsKey === true,
    visibility: options.visibilityTimeoutMs ?? 30_000,
    pollMs: options.pollMs ?? 1000,
    drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
    sleep: options.sleep ?? abortableSleep,
    now: options.now ?? Date.now,
    system: systemOf(options.transport),
    producerSpan: options.producerSpan ?? 'link',
    maxDeliveries: options.maxDeliveries,
  };
}
