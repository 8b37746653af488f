import { ValidationError } from '../errors/index.ts';
import { uuidv7 } from '../ids/uuid-v7.ts';
import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterStore,
  defaultRetryPolicy,
  getInMemoryDeadLetterStore,
  getInMemoryInbox,
  type Inbox,
  type RetryPolicy,
} from './consumer-ports.ts';
import { runInMessageContext } from './context.ts';
import type { Message } from './message.ts';
import type { Delivery, Subscription, Transport } from './transport.ts';

export interface ConsumerOptions<Tx = undefined> {
  /** The consumer group: every group of a topic gets every message. Also names its inbox and dead letters. */
  name: string;
  topic: string;
  transport: Transport;
  /**
   * Handles one message. With an inbox that has `applyOnce` (the SQL inboxes),
   * `tx` is the inbox's open transaction: write through it and the writes
   * commit with the inbox mark. Otherwise `tx` is `undefined`.
   */
  handler: (message: Message, tx: Tx) => unknown;
  /** Default: `defaultRetryPolicy()` (2 immediate retries, then 1 s, 5 s, 30 s with jitter, then dead-letter). */
  retryPolicy?: RetryPolicy;
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
  /** How long `stop` waits for handlers in flight. Default 10 s. */
  drainTimeoutMs?: number;
  /** Injected for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

/** Counts since the consumer was created; each message is counted once its delivery was acknowledged. */
export interface ConsumerStats {
  /** Applied by the handler. */
  handled: number;
  /** Found in the inbox: acknowledged without running the handler. */
  duplicates: number;
  /** Handler runs that failed and were tried again. */
  retries: number;
  deadLettered: number;
  discarded: number;
}

export interface Consumer {
  readonly name: string;
  /**
   * Declares the group's subscription (`transport.declareSubscription`) and
   * starts fetching; once it resolves, every message published to the topic
   * reaches the group.
   */
  start(): Promise<void>;
  /** Stops fetching, lets handlers in flight finish (bounded), gives the rest back to the transport. */
  stop(): Promise<void>;
  stats(): ConsumerStats;
  readonly deadLetters: {
    list(filter?: DeadLetterFilter): Promise<DeadLetter[]>;
    show(id: string): Promise<DeadLetter | undefined>;
    /**
     * Delivers dead letters to this consumer again (attempts start over; each
     * record is kept, marked `redriven`, with the redrive's time). Returns how
     * many were redriven.
     */
    redrive(selection: string | readonly string[] | DeadLetterFilter): Promise<number>;
    /** Marks dead letters as discarded (kept for the record, never delivered). */
    discard(selection: string | readonly string[] | DeadLetterFilter): Promise<number>;
  };
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

const describeError = (error: unknown) =>
  error instanceof Error
    ? { type: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) }
    : { type: typeof error, message: String(error) };

/**
 * The consumer pipeline, in one fixed order for every message:
 * context (correlation and causation for everything the handler does) →
 * dead-letter on exhaustion → retry policy → idempotency (inbox) → per-key
 * ordering → handler. Delivery is at least once; the inbox makes the effect
 * once for a handler whose writes are themselves recorded once.
 */
export function createConsumer<Tx = undefined>(options: ConsumerOptions<Tx>): Consumer {
  const issues = [];
  for (const field of ['name', 'topic'] as const) {
    if (typeof options?.[field] !== 'string' || options[field].length === 0) {
      issues.push({ path: field, message: 'must be a non-empty string' });
    }
  }
  if (typeof options?.handler !== 'function') issues.push({ path: 'handler', message: 'must be a function' });
  if (!options?.transport) issues.push({ path: 'transport', message: 'is required' });
  if (issues.length > 0) throw new ValidationError(issues);

  const { name, topic, transport, handler } = options;
  const policy = options.retryPolicy ?? defaultRetryPolicy();
  const deadLetters = options.deadLetters ?? getInMemoryDeadLetterStore();
  const inbox: Inbox<Tx> = options.inbox ?? (getInMemoryInbox() as Inbox<Tx>);
  const applyOnce = inbox.applyOnce?.bind(inbox);
  const retention = options.inboxRetentionMs ?? 7 * 24 * 3600 * 1000;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const holdOnDelay = (options.onDelayedRetry ?? 'wait') === 'wait';
  const visibility = options.visibilityTimeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 1000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;

  const stats: ConsumerStats = { handled: 0, duplicates: 0, retries: 0, deadLettered: 0, discarded: 0 };
  /** Per key, the deliveries waiting their turn, in arrival order. */
  const lanes = new Map<string, Delivery[]>();
  const running = new Map<string, Promise<void>>();
  let subscription: Subscription | undefined;
  let stopping = new AbortController();
  let loop: Promise<void> | undefined;
  let laneFreed: (() => void) | undefined;
  let lastPrune = 0;

  const deadLetter = async (delivery: Delivery, error: unknown, reason: string, attempts: number, first: number) => {
    const at = new Date(now());
    await deadLetters.add({
      id: uuidv7(),
      consumer: name,
      topic,
      message: delivery.message,
      error: describeError(error),
      reason,
      attempts,
      firstFailureAt: new Date(first),
      lastFailureAt: at,
      deadLetteredAt: at,
      redrives: [],
      state: 'dead',
    });
    await delivery.ack();
    stats.deadLettered += 1;
  };

  /** Steps 2–4 and 6 for one delivery (step 5 is the lane it runs in; step 1 wraps the handler). */
  const process = async (delivery: Delivery) => {
    const message = delivery.message;
    const duplicate = async () => {
      await delivery.ack();
      stats.duplicates += 1;
    };
    // A transactional inbox tells duplicates when it writes the mark.
    if (!applyOnce && (await inbox.has(name, message.id))) return duplicate();
    const run = (tx: Tx) => runInMessageContext(message, () => handler(message, tx), name);
    let attempts = 0;
    let firstFailure = 0;
    for (;;) {
      try {
        if (applyOnce) {
          if (!(await applyOnce(name, message.id, new Date(now()), run, delivery))) return duplicate();
        } else {
          await run(undefined as Tx);
        }
      } catch (error) {
        attempts += 1;
        if (attempts === 1) firstFailure = now();
        const decision = policy(error, attempts, message);
        if (decision.action === 'discard') {
          await delivery.ack();
          stats.discarded += 1;
          return;
        }
        if (decision.action === 'dead-letter') {
          await deadLetter(delivery, error, decision.reason, attempts, firstFailure);
          return;
        }
        if (decision.delayMs > 0 && !holdOnDelay) {
          await deadLetter(delivery, error, 'delayed retry, key moved on', attempts, firstFailure);
          return;
        }
        if (stopping.signal.aborted) {
          // Shutting down: give it back for whoever runs next, with the delay it was due.
          await delivery.release(decision.delayMs);
          return;
        }
        stats.retries += 1;
        await delivery.extend(decision.delayMs + visibility);
        await sleep(decision.delayMs, stopping.signal);
        if (stopping.signal.aborted) {
          await delivery.release(0);
          return;
        }
        continue;
      }
      if (!applyOnce) await inbox.add(name, message.id, new Date(now()));
      // Counted once settled: a count read after it is never ahead of the transport.
      await delivery.ack();
      stats.handled += 1;
      return;
    }
  };

  const startLane = (key: string) => {
    const work = (async () => {
      const lane = lanes.get(key) as Delivery[];
      while (lane.length > 0 && !stopping.signal.aborted) {
        await process(lane[0] as Delivery).catch(async () => {
          // The inbox or dead-letter store failed: leave the message to come back later.
          await (lane[0] as Delivery).release(1000).catch(() => undefined);
        });
        lane.shift();
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
      const deliveries = await sub.receive(room, pollMs, signal).catch(() => []);
      for (const delivery of deliveries) {
        const key = delivery.message.key;
        const lane = lanes.get(key);
        if (lane) lane.push(delivery);
        else lanes.set(key, [delivery]);
      }
      startWaitingLanes();
      if (now() - lastPrune > 60_000) {
        lastPrune = now();
        await inbox.prune(new Date(now() - retention)).catch(() => undefined);
      }
    }
  };

  const select = async (selection: string | readonly string[] | DeadLetterFilter): Promise<DeadLetter[]> => {
    if (typeof selection === 'string' || Array.isArray(selection)) {
      const ids = typeof selection === 'string' ? [selection] : (selection as readonly string[]);
      const found = await Promise.all(ids.map((id) => deadLetters.get(id)));
      return found.filter((r): r is DeadLetter => r !== undefined && r.consumer === name && r.state === 'dead');
    }
    return deadLetters.list({ ...(selection as DeadLetterFilter), consumer: name, state: 'dead' });
  };

  return {
    name,

    async start() {
      if (loop) return;
      stopping = new AbortController();
      subscription = transport.subscribe(topic, name, { visibilityTimeoutMs: visibility });
      loop = fetchLoop(subscription);
      // Resolves once the group is durably declared: whatever is published from now on reaches it.
      try {
        await transport.declareSubscription(topic, name);
      } catch (error) {
        await this.stop();
        throw error;
      }
    },

    async stop() {
      if (!loop) return;
      stopping.abort();
      await loop;
      loop = undefined;
      // Handlers in flight finish (bounded); what never started goes back to the transport.
      const inFlight = Promise.all(running.values());
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([inFlight, new Promise((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)))]);
      clearTimeout(timer);
      for (const [key, lane] of lanes) {
        const waiting = running.has(key) ? lane.slice(1) : lane;
        await Promise.all(waiting.map((d) => d.release(0).catch(() => undefined)));
      }
      lanes.clear();
      await subscription?.close();
      subscription = undefined;
    },

    stats: () => ({ ...stats }),

    deadLetters: {
      list: (filter = {}) => deadLetters.list({ ...filter, consumer: name }),
      async show(id) {
        const record = await deadLetters.get(id);
        return record?.consumer === name ? record : undefined;
      },
      async redrive(selection) {
        const records = await select(selection);
        for (const record of records) {
          await transport.redeliver(topic, name, [record.message]);
          await deadLetters.update({ ...record, state: 'redriven', redrives: [...record.redrives, new Date(now())] });
        }
        return records.length;
      },
      async discard(selection) {
        const records = await select(selection);
        for (const record of records) await deadLetters.update({ ...record, state: 'discarded' });
        return records.length;
      },
    },
  };
}
