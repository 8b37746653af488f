import { isStoreClosedError } from '../errors/index.ts';
import { type ConsumerDeadLetters, consumerDeadLetters, deadLetterStoreFor } from './consumer-dead-letters.ts';
import {
  type ConsumerErrorContext,
  type ConsumerErrorStage,
  checkConsumerOptions,
  retryPolicyFromShorthand,
} from './consumer-options.ts';
import {
  type DeadLetterStore,
  defaultRetryPolicy,
  getInMemoryInbox,
  type Inbox,
  type RetryPolicy,
} from './consumer-ports.ts';
import { createProcessor, StepFailure } from './consumer-process.ts';
import type { Message } from './message.ts';
import type { Delivery, Subscription, Transport } from './transport.ts';

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
  /** Shorthand for a policy: ms before each retry, one number or a schedule (`[1000, 5000, 30000]`). */
  retryDelay?: number | readonly number[];
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
  /** How long a delivery stays invisible to other consumers while handled. Default 30 s. */
  visibilityTimeoutMs?: number;
  /** Longest wait for new messages per fetch. Default 1000 ms. */
  pollMs?: number;
  /** How long `stop` waits for handlers in flight, and then for giving messages back. Default 10 s. */
  drainTimeoutMs?: number;
  /**
   * Told every failure: a receive, a handler run, the inbox, the dead-letter
   * store, a settle (ack, release, extend), the inbox pruning, the retry
   * policy. A hook that throws changes nothing.
   */
  onError?: (error: unknown, context: ConsumerErrorContext) => void;
  /** Injected for tests (also paces the back-off after a failed receive). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

/**
 * `'idle'` before `start`; `'failed'` once its transport was found closed
 * (fetching stopped; `lastError` says why); `'stopped'` after `stop`.
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
   * reaches the group. Rejects when the transport or the dead-letter store is unusable.
   */
  start(): Promise<void>;
  /**
   * Stops fetching, lets handlers in flight finish (up to `drainTimeoutMs`),
   * gives the rest back to the transport (failures reported, bounded by
   * `drainTimeoutMs` too). Always resolves, also after the transport closed.
   */
  stop(): Promise<void>;
  stats(): ConsumerStats;
  readonly deadLetters: ConsumerDeadLetters;
}

export type { ConsumerErrorContext, ConsumerErrorStage };

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

/** Waits for `work` up to `ms`; true when it settled in time. */
const within = async (work: Promise<unknown>, ms: number): Promise<boolean> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  try {
    return await Promise.race([work.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
};

/** After a failed receive: 100 ms, doubling, at most 5 s. */
const RECEIVE_BACKOFF_MS = { first: 100, max: 5000 };

/**
 * The consumer pipeline, in one fixed order for every message:
 * context (correlation and causation for everything the handler does) →
 * dead-letter on exhaustion → retry policy → idempotency (inbox) → per-key
 * ordering → handler. Delivery is at least once; the inbox makes the effect
 * once for a handler whose writes are themselves recorded once.
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
  const { name, topic, transport, handler } = options;
  const policy =
    options.retryPolicy ??
    (options.maxRetries !== undefined || options.retryDelay !== undefined
      ? retryPolicyFromShorthand(options)
      : defaultRetryPolicy());
  const deadLetterStore = deadLetterStoreFor(options.deadLetters, transport);
  const inbox: Inbox<Tx> = options.inbox ?? (getInMemoryInbox() as Inbox<Tx>);
  const retention = options.inboxRetentionMs ?? 7 * 24 * 3600 * 1000;
  const concurrency = options.concurrency ?? 8;
  const holdOnDelay = (options.onDelayedRetry ?? 'wait') === 'wait';
  const visibility = options.visibilityTimeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 1000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;

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
  /** Per key, the deliveries waiting their turn, in arrival order. */
  const lanes = new Map<string, Delivery[]>();
  const running = new Map<string, Promise<void>>();
  let subscription: Subscription | undefined;
  let stopping = new AbortController();
  let loop: Promise<void> | undefined;
  let starting: Promise<void> | undefined;
  let laneFreed: (() => void) | undefined;
  let lastPrune = 0;

  const report = (error: unknown, stage: ConsumerErrorStage, message?: Message) => {
    stats.errors += 1;
    stats.lastError = { error, stage, at: new Date(now()) };
    try {
      options.onError?.(error, { consumer: name, stage, ...(message ? { message } : {}) });
    } catch {
      // The hook's own failure changes nothing.
    }
  };

  /** The transport was closed under the consumer: stop fetching and working, visibly. */
  const fail = () => {
    if (stats.state !== 'running') return;
    stats.state = 'failed';
    stopping.abort();
  };

  const process = createProcessor<Tx>({
    name,
    topic,
    // The transport does not check data against `M`: the union is the caller's declaration.
    handler: handler as (message: Message, tx: Tx) => unknown,
    policy,
    inbox,
    deadLetterStore,
    holdOnDelay,
    visibility,
    sleep,
    now,
    signal: () => stopping.signal,
    report,
    stats,
  });

  /** A step failed: report it and leave the message to come back later (unless the transport is gone). */
  const failed = async (failure: unknown, delivery: Delivery) => {
    const { stage, cause } = failure instanceof StepFailure ? failure : new StepFailure('handler', failure);
    report(cause, stage, delivery.message);
    if (isStoreClosedError(cause)) return fail();
    if (stage === 'release') return;
    await delivery.release(1000).catch((error: unknown) => {
      report(error, 'release', delivery.message);
      if (isStoreClosedError(error)) fail();
    });
  };

  const startLane = (key: string) => {
    const work = (async () => {
      const lane = lanes.get(key) as Delivery[];
      while (lane.length > 0 && !stopping.signal.aborted) {
        const delivery = lane[0] as Delivery;
        let givenBack = false;
        await process(delivery).catch((failure: unknown) => {
          givenBack = true;
          return failed(failure, delivery);
        });
        lane.shift();
        if (givenBack) {
          // Its key's later messages must not run before it: they go back too, behind it.
          const rest = lane.splice(0);
          await Promise.all(
            rest.map((d) =>
              d.release(0).catch((error: unknown) => {
                // A closed transport was reported once already, by the step that failed.
                if (!isStoreClosedError(error)) report(error, 'release', d.message);
              }),
            ),
          );
        }
      }
      if (lane.length === 0) lanes.delete(key);
    })().finally(() => {
      running.delete(key);
      startWaitingLanes();
      laneFreed?.();
    });
    running.set(key, work);
  };

  const startWaitingLanes = () => {
    if (stopping.signal.aborted) return;
    for (const key of lanes.keys()) {
      if (running.size >= concurrency) return;
      if (!running.has(key)) startLane(key);
    }
  };

  const buffered = () => {
    let count = 0;
    for (const lane of lanes.values()) count += lane.length;
    return count;
  };

  const fetchLoop = async (sub: Subscription) => {
    const signal = stopping.signal;
    let backoff = 0;
    while (!signal.aborted) {
      // Fetch in batches: refill only once half the buffer was worked off (each fetch is a write on SQL transports).
      const room = concurrency * 4 - buffered();
      if (room < concurrency * 2) {
        await new Promise<void>((resolve) => {
          const done = () => {
            signal.removeEventListener('abort', done);
            laneFreed = undefined;
            resolve();
          };
          laneFreed = done;
          signal.addEventListener('abort', done, { once: true });
        });
        continue;
      }
      let deliveries: Delivery[];
      try {
        deliveries = await sub.receive(room, pollMs, signal);
        backoff = 0;
      } catch (error) {
        report(error, 'receive');
        if (isStoreClosedError(error)) return fail();
        // Never spin on a failing transport: back off, then try again.
        backoff = Math.min(backoff === 0 ? RECEIVE_BACKOFF_MS.first : backoff * 2, RECEIVE_BACKOFF_MS.max);
        await sleep(backoff, signal);
        continue;
      }
      for (const delivery of deliveries) {
        const key = delivery.message.key;
        const lane = lanes.get(key);
        if (lane) lane.push(delivery);
        else lanes.set(key, [delivery]);
      }
      startWaitingLanes();
      if (now() - lastPrune > 60_000) {
        lastPrune = now();
        await inbox.prune(new Date(now() - retention)).catch((error: unknown) => report(error, 'prune'));
      }
    }
  };

  /** Gives the deliveries that never started back to the transport; failures reported, bounded by `ms`. */
  const giveBack = async (ms: number) => {
    const waiting: Delivery[] = [];
    for (const [key, lane] of lanes) waiting.push(...(running.has(key) ? lane.slice(1) : lane));
    lanes.clear();
    const released = Promise.all(
      waiting.map((d) => d.release(0).catch((error: unknown) => report(error, 'release', d.message))),
    );
    if (!(await within(released, ms))) {
      report(
        new Error(
          `giving ${waiting.length} messages back took over ${ms} ms; they return after their visibility timeout`,
        ),
        'release',
      );
    }
  };

  return {
    name,

    start() {
      if (loop) return Promise.resolve();
      // One start at a time: a second call while the first awaits gets the same promise.
      starting ??= (async () => {
        try {
          await deadLetterStore();
          // Declared before it resolves: whatever is published from now on reaches the group.
          await transport.declareSubscription(topic, name);
        } catch (error) {
          report(error, 'start');
          throw error;
        }
        stopping = new AbortController();
        subscription = transport.subscribe(topic, name, { visibilityTimeoutMs: visibility });
        stats.state = 'running';
        loop = fetchLoop(subscription);
      })().finally(() => {
        starting = undefined;
      });
      return starting;
    },

    async stop() {
      await starting?.catch(() => undefined);
      if (!loop) return;
      stopping.abort();
      await loop;
      loop = undefined;
      // Handlers in flight finish (bounded); what never started goes back to the transport.
      const started = Date.now();
      await within(Promise.all(running.values()), drainTimeoutMs);
      // Giving back gets what the drain left of drainTimeoutMs, and at least a second.
      await giveBack(Math.max(1000, drainTimeoutMs - (Date.now() - started)));
      const sub = subscription;
      subscription = undefined;
      await sub?.close().catch((error: unknown) => report(error, 'receive'));
      if (stats.state === 'running') stats.state = 'stopped';
    },

    stats: () => ({ ...stats }),

    deadLetters: consumerDeadLetters(name, topic, transport, deadLetterStore, now),
  };
}
