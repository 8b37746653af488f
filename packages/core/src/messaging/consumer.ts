import { settledWithin } from '../adapter/deadline.ts';
import { TimeoutError } from '../errors/index.ts';
import { log } from '../logging/logger.ts';
import { type ConsumerDeadLetters, consumerDeadLetters } from './consumer-dead-letters.ts';
import { decodingHandler } from './consumer-decode.ts';
import { fetchIntoLanes } from './consumer-fetch.ts';
import { inboxStep } from './consumer-inbox.ts';
import { createKeyLanes } from './consumer-lanes.ts';
import { type ObservedConsumer, observeConsumer } from './consumer-metrics.ts';
import {
  type ConsumerErrorContext,
  type ConsumerErrorStage,
  type ConsumerOptions,
  checkConsumerOptions,
  resolveConsumerOptions,
} from './consumer-options.ts';
import { createProcessor } from './consumer-process.ts';
import type { Message } from './message.ts';
import type { Subscription } from './transport.ts';

/**
 * `'idle'` before `start`; `'failed'` once its transport was found closed
 * or its fetch loop failed (fetching stopped; `lastError` says why);
 * `'stopped'` after `stop`.
 */
export type ConsumerState = 'idle' | 'running' | 'stopped' | 'failed';

/** Counts since the consumer was created; each message is counted once its delivery was acknowledged. */
export interface ConsumerStats {
  state: ConsumerState;
  /** Applied by the handler. */
  handled: number;
  /** Found in the inbox: acknowledged without running the handler. */
  duplicates: number;
  /** Handler runs that failed and were tried again. */
  retries: number;
  deadLettered: number;
  discarded: number;
  /** Failures reported to `onError` (handler failures included). */
  errors: number;
  /** The last failure reported. */
  lastError: { error: unknown; stage: ConsumerErrorStage; at: Date } | undefined;
}

export interface Consumer {
  readonly name: string;
  /**
   * Declares the group's subscription (`transport.declareSubscription`) and
   * starts fetching; once it resolves, every message published to the topic
   * reaches the group. Rejects when the transport or the dead-letter store is unusable,
   * and with a `TimeoutError` when a `stop()` called after it came first (it waited on the
   * transport or the dead-letter store, or its turn): it then starts nothing.
   */
  start(): Promise<void>;
  /**
   * Stops fetching, lets handlers in flight finish (up to `drainTimeoutMs`),
   * gives the rest back to the transport (failures reported, bounded by
   * `drainTimeoutMs` too). Always resolves, also after the transport closed, and
   * while a `start()` waits on a backend that never answers (that start rejects).
   */
  stop(): Promise<void>;
  stats(): ConsumerStats;
  readonly deadLetters: ConsumerDeadLetters;
}

export type { ConsumerErrorContext, ConsumerErrorStage, ConsumerOptions };

/**
 * The consumer pipeline, in one fixed order for every message:
 * context (correlation and causation for everything the handler does) →
 * dead-letter on exhaustion → retry policy → idempotency (inbox) → per-key
 * ordering → decoding (with `schemas`: upcast to the current version) → handler. Delivery is at least once; the inbox makes the effect
 * once for a handler whose writes are themselves recorded once.
 *
 * One step per file: `consumer-context.ts`, `consumer-dead-letters.ts`,
 * `consumer-retry.ts`, `consumer-inbox.ts`, `consumer-lanes.ts`, `consumer-decode.ts`, put together
 * per delivery in `consumer-process.ts`; `consumer-fetch.ts` fills the lanes.
 *
 * @example
 * const consumer = createConsumer({
 *   name: 'billing', topic: 'orders', transport,
 *   maxRetries: 3, retryDelay: [1000, 5000, 30000],
 *   onError: (error, { stage }) => logger.warn({ error, stage }),
 *   handler: (message) => bill(message.data),
 * });
 * await consumer.start();
 */
export function createConsumer<Tx = undefined, M extends Message = Message>(options: ConsumerOptions<Tx, M>): Consumer {
  checkConsumerOptions(options);
  const { name, topic, transport } = options;
  const settings = resolveConsumerOptions(options);
  const { deadLetterStore, concurrency, visibility, drainTimeoutMs, now } = settings;

  const stats: ConsumerStats = {
    state: 'idle',
    handled: 0,
    duplicates: 0,
    retries: 0,
    deadLettered: 0,
    discarded: 0,
    errors: 0,
    lastError: undefined,
  };
  let subscription: Subscription | undefined;
  let stopping = new AbortController();
  let loop: Promise<void> | undefined;
  /** Keeps the deliveries waiting in the lanes invisible to the group's other consumers while this one runs. */
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  /**
   * Starts and stops run one after another, in call order: a start made while a stop drains begins once
   * that stop closed its own subscription (it would close the new one), and a stop made while a start
   * awaits the transport or its turn makes that start give up (`starts`), starting nothing.
   */
  let lifecycle: Promise<unknown> = Promise.resolve();
  const inTurn = (step: () => Promise<void>): Promise<void> => {
    const run = lifecycle.then(step);
    lifecycle = run.catch(() => undefined);
    return run;
  };
  /**
   * Aborted by each stop: a start called before it gives up, whether it waits for its turn or on a
   * backend that never answers (a pool with no free connection), so that the stop never waits behind it.
   */
  let starts = new AbortController();
  const stoppedBeforeStart = () => new TimeoutError(`consumer ${name} was stopped before it started`);
  /**
   * `true` once `work` is done, `false` once `cancelled` aborts first (what `work` does after is
   * ignored); rejects as `work` does.
   */
  const doneUnlessStopped = (work: Promise<unknown>, cancelled: AbortSignal) =>
    new Promise<boolean>((resolve, reject) => {
      const onStop = () => resolve(false);
      cancelled.addEventListener('abort', onStop, { once: true });
      work.then(() => resolve(true), reject).finally(() => cancelled.removeEventListener('abort', onStop));
    });

  const report = (error: unknown, stage: ConsumerErrorStage, message?: Message) => {
    stats.errors += 1;
    stats.lastError = { error, stage, at: new Date(now()) };
    try {
      options.onError?.(error, { consumer: name, stage, ...(message ? { message } : {}) });
    } catch {
      // The hook's own failure changes nothing.
    }
    const record = { consumer: name, topic, stage, err: error, ...(message ? { messageId: message.id } : {}) };
    log(options.logger, stage === 'handler' ? 'warn' : 'error', record, `consumer ${name}: ${stage} failed`);
  };
  let unobserve = () => {};
  const observed: ObservedConsumer = {
    name,
    topic,
    stats,
    transport,
    deadLetterStore,
    logger: options.logger,
    now,
  };

  /** The transport was closed under the consumer, or its fetch loop failed: stop fetching and working, visibly. */
  const fail = () => {
    if (stats.state !== 'running') return;
    stats.state = 'failed';
    stopping.abort();
  };

  const signal = () => stopping.signal;
  const inbox = inboxStep({ name, inbox: settings.inbox, retentionMs: settings.retentionMs, now, report });
  // The transport does not check data against `M`: the union is the caller's declaration.
  const given = options.handler as (message: Message, tx: Tx) => unknown;
  const handler = options.schemas ? decodingHandler(options.schemas, given) : given;
  const process = createProcessor<Tx>({ ...settings, name, topic, handler, inbox, signal, report, fail, stats });
  const lanes = createKeyLanes({ concurrency, process, signal, report, visibility });

  return {
    name,

    start() {
      const cancelled = starts.signal;
      return inTurn(async () => {
        if (loop) return;
        if (cancelled.aborted) throw stoppedBeforeStart();
        const prepare = async () => {
          await deadLetterStore();
          // Declared before it resolves: whatever is published from now on reaches the group.
          await transport.declareSubscription(topic, name);
        };
        const failed = (error: unknown): never => {
          report(error, 'start');
          throw error;
        };
        if (!(await doneUnlessStopped(prepare(), cancelled).catch(failed))) throw stoppedBeforeStart();
        let subscribed: Subscription;
        try {
          subscribed = transport.subscribe(topic, name, { visibilityTimeoutMs: visibility });
        } catch (error) {
          return failed(error);
        }
        subscription = subscribed;
        stopping = new AbortController();
        stats.state = 'running';
        unobserve();
        unobserve = observeConsumer(observed);
        if (visibility > 0) {
          keepAlive = setInterval(() => void lanes.keepAlive(visibility), Math.max(10, Math.floor(visibility / 3)));
          keepAlive.unref?.();
        }
        loop = fetchIntoLanes(subscribed, {
          ...settings,
          lanes,
          pruneInbox: inbox.pruneWhenDue,
          signal: stopping.signal,
          report,
          fail,
        }).catch((error: unknown) => {
          // A failure the loop has no answer for ends it: reported, the consumer fails visibly instead of idling unseen.
          report(error, 'receive');
          fail();
        });
      });
    },

    stop() {
      starts.abort();
      starts = new AbortController();
      return inTurn(async () => {
        if (!loop) return;
        stopping.abort();
        // The fetch loop ends at its next turn, unless a call of it (a receive, the inbox's pruning) hangs on
        // its backend: never waited for longer than the drain.
        if (!(await settledWithin(loop, Math.max(1000, drainTimeoutMs)))) {
          report(
            new TimeoutError(`the fetch loop did not end within ${Math.max(1000, drainTimeoutMs)} ms of the stop`),
            'receive',
          );
        }
        loop = undefined;
        // Handlers in flight finish (bounded); what never started goes back to the transport.
        const started = Date.now();
        await lanes.drain(drainTimeoutMs);
        // Giving back gets what the drain left of drainTimeoutMs, and at least a second.
        await lanes.giveBack(Math.max(1000, drainTimeoutMs - (Date.now() - started)));
        clearInterval(keepAlive);
        keepAlive = undefined;
        const sub = subscription;
        subscription = undefined;
        const closing = sub?.close().catch((error: unknown) => report(error, 'receive'));
        if (closing && !(await settledWithin(closing, Math.max(1000, drainTimeoutMs)))) {
          report(new TimeoutError('closing the subscription did not end in time'), 'receive');
        }
        if (stats.state === 'running') stats.state = 'stopped';
        unobserve();
      });
    },

    stats: () => ({ ...stats }),

    deadLetters: consumerDeadLetters(name, topic, transport, deadLetterStore, now),
  };
}
