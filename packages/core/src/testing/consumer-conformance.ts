import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { NonRetryableError } from '../errors/index.ts';
import { type Consumer, type ConsumerOptions, createConsumer } from '../messaging/consumer.ts';
import {
  type DeadLetter,
  type DeadLetterStore,
  defaultRetryPolicy,
  getInMemoryDeadLetterStore,
  type Inbox,
  isPromiseLike,
} from '../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../messaging/message.ts';
import type { Transport } from '../messaging/transport.ts';
import { uniqueCategory } from './conformance/context.ts';
import { competingConsumerCases } from './consumer-competing-cases.ts';
import { consumerFailureCases } from './consumer-conformance-failures.ts';
import { transactionHandleCases } from './consumer-conformance-transactions.ts';
import { waitUntil } from './wait-until.ts';

/**
 * What the consumer pipeline runs on in one case: a transport, optionally an
 * inbox and a dead-letter store, and a table of effects the handlers write.
 */
export interface ConsumerEnvironment<Tx = undefined> {
  transport: Transport;
  /** Default: the consumer's in-memory inbox. */
  inbox?: Inbox<Tx>;
  /** Default: an in-memory store. */
  deadLetters?: DeadLetterStore;
  /**
   * Records `value` for `consumer` through the handler's transaction `tx`
   * (synchronously where handlers must be synchronous).
   */
  writeEffect(tx: Tx, consumer: string, value: string): unknown;
  /** The committed effects of `consumer`, in the order they were written. */
  effects(consumer: string): Promise<string[]>;
  /**
   * A second transport object on the same storage, as another process would
   * open it (a second connection to the file, a second pool). Default: the
   * environment's `transport`. Closed when the case ends.
   */
  peerTransport?(): Promise<Transport>;
  close(): Promise<void>;
}

export interface ConsumerConformanceOptions<Tx = undefined> {
  /** Shown in the test names, e.g. `'sqlite (transport + inbox)'`. */
  name: string;
  /** Once per case; closed when the case ends. May share storage with other cases (names are unique per case). */
  createEnvironment: () => Promise<ConsumerEnvironment<Tx>>;
  /** The inbox commits the handler's writes with its mark (the SQL inboxes). */
  transactional?: boolean;
  /** Handlers must not await (the SQLite inbox runs them inside a synchronous transaction). */
  synchronousHandlers?: boolean;
  /** Handlers run one at a time, whatever the consumer's concurrency (an inbox with group commit). */
  handlersTakeTurns?: boolean;
  teardown?: () => Promise<void> | void;
  skip?: string | false;
}

export interface ConsumerCaseContext<Tx = undefined> {
  environment: ConsumerEnvironment<Tx>;
  transactional: boolean;
  synchronousHandlers: boolean;
  handlersTakeTurns: boolean;
  /** A topic unique to this case. */
  topic: string;
  /** A consumer on the environment, with fast retries (1 immediate, then 5 ms twice); stopped after the case. */
  consumer(options: Partial<ConsumerOptions<Tx>> & Pick<ConsumerOptions<Tx>, 'handler'>): Consumer;
  /** Runs `next` after `result` (now when it is not a promise), so a handler stays synchronous where it must. */
  andThen(result: unknown, next: () => unknown): unknown;
  /** Starts a publish from a handler: awaited when handlers may await, fired otherwise. */
  publish(topic: string, messages: Message[]): unknown;
  /** The environment's `peerTransport()` (or its transport), closed after the case's consumers stopped. */
  peerTransport(): Promise<Transport>;
  /**
   * A new environment on the same storage, as after a restart (close
   * `environment` first); closed after the case.
   */
  reopen(): Promise<ConsumerEnvironment<Tx>>;
}

export interface ConsumerConformanceCase {
  name: string;
  /** Only where handlers may await. */
  asyncHandlersOnly?: boolean;
  /** Only with a transactional inbox. */
  transactionalOnly?: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: each case works with any transaction type
  run(context: ConsumerCaseContext<any>): Promise<void>;
}

const n = (m: Message) => (m.data as { n: number }).n;

export const consumerConformanceCases: readonly ConsumerConformanceCase[] = [
  ...consumerFailureCases,
  {
    name: 'a message delivered again after it was applied is applied once',
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('billing'),
        handler: (m, tx) => c.environment.writeEffect(tx, consumer.name, m.id),
      });
      await consumer.start();
      const message = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().handled === 1, 'the first delivery');
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().duplicates === 1, 'the duplicate');
      assert.deepEqual(await c.environment.effects(consumer.name), [message.id]);
    },
  },
  {
    name: 'a poison message is retried per policy, then dead-lettered with its envelope and error while other keys flow; redrive after a fix applies it once',
    async run(c) {
      let fixed = false;
      const consumer = c.consumer({
        name: uniqueCategory('stock'),
        handler: (m, tx) => {
          if (m.key === 'order-bad' && !fixed) throw new TypeError('no such sku');
          return c.environment.writeEffect(tx, consumer.name, `${m.key}:${n(m)}`);
        },
      });
      await consumer.start();
      const poison = createMessage({
        type: 'OrderPlaced',
        data: { n: 0 },
        key: 'order-bad',
        metadata: { tenant: 't1' },
        headers: { 'x-source': 'web' },
      });
      await c.environment.transport.publish(c.topic, [
        poison,
        ...Array.from({ length: 5 }, (_, i) =>
          createMessage({ type: 'OrderPlaced', data: { n: i }, key: `order-${i}` }),
        ),
      ]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
      await waitUntil(() => consumer.stats().handled === 5, 'the other keys');
      const [record] = await consumer.deadLetters.list({ error: 'no such sku' });
      assert.ok(record, 'listed by error text');
      assert.deepEqual(record.message, poison, 'the original envelope');
      assert.equal(record.error.type, 'TypeError');
      assert.equal(record.error.message, 'no such sku');
      assert.match(record.error.stack ?? '', /no such sku/);
      assert.equal(record.attempts, 4, 'first run, 1 immediate retry, 2 delayed');
      assert.equal(record.consumer, consumer.name);
      assert.equal(record.topic, c.topic);
      assert.equal(record.state, 'dead');
      assert.ok(record.firstFailureAt <= record.lastFailureAt);
      assert.ok(record.deadLetteredAt instanceof Date);
      assert.equal(consumer.stats().retries, 3);
      assert.deepEqual(await consumer.deadLetters.show(record.id), record, 'show returns the same record');

      fixed = true;
      assert.equal(await consumer.deadLetters.redrive(record.id), 1);
      await waitUntil(async () => (await c.environment.effects(consumer.name)).includes('order-bad:0'), 'the redrive');
      assert.equal(await consumer.deadLetters.redrive(record.id), 0, 'a redriven record is not redriven again');
      const after = await consumer.deadLetters.show(record.id);
      assert.equal(after?.state, 'redriven');
      assert.equal(after?.redrives.length, 1);
      assert.ok(after?.redrives[0] instanceof Date);
      await waitUntil(() => consumer.stats().handled === 6, 'the redriven message counted');
      const effects = await c.environment.effects(consumer.name);
      assert.equal(effects.filter((e) => e === 'order-bad:0').length, 1, 'redrive delivers once');
      assert.equal(effects.length, 6);
    },
  },
  {
    name: 'a non-retryable error goes straight to the dead-letter queue; discard keeps the record',
    async run(c) {
      let runs = 0;
      const consumer = c.consumer({
        name: uniqueCategory('mailer'),
        handler: () => {
          runs += 1;
          throw new NonRetryableError('address is invalid');
        },
      });
      await consumer.start();
      await c.environment.transport.publish(c.topic, [createMessage({ type: 'OrderPlaced', data: {} })]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
      assert.equal(runs, 1);
      const [record] = await consumer.deadLetters.list();
      assert.equal(record?.attempts, 1);
      assert.equal(record?.reason, 'not retryable');
      assert.equal(await consumer.deadLetters.discard({ type: 'OrderPlaced' }), 1);
      assert.deepEqual(await consumer.deadLetters.list(), []);
      assert.equal((await consumer.deadLetters.list({ state: 'discarded' })).length, 1);
      assert.equal(await consumer.deadLetters.redrive({}), 0, 'a discarded record is not redriven');
    },
  },
  {
    name: 'per-key order holds under parallelism with injected random failures; every message is applied once',
    async run(c) {
      let active = 0;
      let peak = 0;
      let seed = 7;
      const random = () => {
        seed = (seed * 48271) % 2147483647;
        return seed / 2147483647;
      };
      const write = (m: Message, tx: unknown) => {
        // Fails before the write, or (where the inbox is transactional) after it: rolled back either way.
        if (random() < 0.1) throw new Error('flaky before');
        return c.andThen(c.environment.writeEffect(tx, consumer.name, `${m.key}:${n(m)}`), () => {
          if (c.transactional && random() < 0.1) throw new Error('flaky after');
        });
      };
      const consumer = c.consumer({
        name: uniqueCategory('ledger'),
        concurrency: 6,
        retryPolicy: defaultRetryPolicy({ immediate: 20 }),
        handler: c.synchronousHandlers
          ? (m, tx) => write(m, tx)
          : async (m, tx) => {
              active += 1;
              peak = Math.max(peak, active);
              try {
                await new Promise((resolve) => setImmediate(resolve));
                await write(m, tx);
              } finally {
                active -= 1;
              }
            },
      });
      const messages: Message[] = [];
      for (let i = 0; i < 15; i++) {
        for (let k = 0; k < 12; k++) messages.push(createMessage({ type: 'Paid', data: { n: i }, key: `acct-${k}` }));
      }
      await consumer.start(); // a group receives what is published after it first subscribed
      await c.environment.transport.publish(c.topic, messages);
      await waitUntil(() => consumer.stats().handled === messages.length, 'every message', 30_000);
      const effects = await c.environment.effects(consumer.name);
      assert.equal(effects.length, messages.length, 'each message applied once');
      for (let k = 0; k < 12; k++) {
        assert.deepEqual(
          effects.filter((e) => e.startsWith(`acct-${k}:`)),
          Array.from({ length: 15 }, (_, i) => `acct-${k}:${i}`),
          `key acct-${k} out of order`,
        );
      }
      if (!c.synchronousHandlers && !c.handlersTakeTurns) {
        assert.ok(peak > 1, 'keys should run in parallel');
        assert.ok(peak <= 6, `more than the concurrency limit ran at once (${peak})`);
      }
      assert.ok(consumer.stats().retries > 0, 'the random failures should have caused retries');
    },
  },
  {
    name: 'a handler that fails after writing leaves nothing behind; its retry applies the message once',
    transactionalOnly: true,
    async run(c) {
      let runs = 0;
      const consumer = c.consumer({
        name: uniqueCategory('invoices'),
        handler: (m, tx) =>
          c.andThen(c.environment.writeEffect(tx, consumer.name, m.id), () => {
            runs += 1;
            if (runs === 1) throw new Error('failed after the write');
          }),
      });
      await consumer.start();
      const message = createMessage({ type: 'OrderPlaced', data: {} });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().handled === 1, 'the retry');
      assert.equal(runs, 2);
      assert.deepEqual(await c.environment.effects(consumer.name), [message.id]);
    },
  },
  {
    name: "with onDelayedRetry 'dead-letter', a key moves on instead of waiting for a delayed retry",
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('search'),
        onDelayedRetry: 'dead-letter',
        retryPolicy: defaultRetryPolicy({ immediate: 0, delaysMs: [60_000] }),
        handler: (m, tx) => {
          if (n(m) === 1) throw new Error('index down');
          return c.environment.writeEffect(tx, consumer.name, String(n(m)));
        },
      });
      await consumer.start();
      await c.environment.transport.publish(
        c.topic,
        [0, 1, 2].map((i) => createMessage({ type: 'OrderPlaced', data: { n: i }, key: 'order-9' })),
      );
      await waitUntil(() => consumer.stats().handled === 2, 'the key moving on');
      assert.deepEqual(await c.environment.effects(consumer.name), ['0', '2']);
      assert.equal((await consumer.deadLetters.list())[0]?.reason, 'delayed retry, key moved on');
    },
  },
  {
    name: 'correlation and causation are right across three hops through the transport',
    async run(c) {
      const second = `${c.topic}-stock`;
      const third = `${c.topic}-payments`;
      const hop1 = c.consumer({
        name: uniqueCategory('inventory'),
        handler: () => c.publish(second, [createMessage({ type: 'StockReserved', data: {} })]),
      });
      const hop2 = c.consumer({
        name: uniqueCategory('payments'),
        topic: second,
        handler: () => c.publish(third, [createMessage({ type: 'PaymentRequested', data: {} })]),
      });
      const hop3 = c.consumer({
        name: uniqueCategory('ledger'),
        topic: third,
        handler: (m, tx) => {
          const caused = createMessage({ type: 'Booked', data: {} });
          return c.environment.writeEffect(
            tx,
            hop3.name,
            JSON.stringify({ in: m.metadata, out: caused.metadata, inId: m.id }),
          );
        },
      });
      for (const consumer of [hop1, hop2, hop3]) await consumer.start();
      const first = createMessage({ type: 'OrderPlaced', data: {} });
      await c.environment.transport.publish(c.topic, [first]);
      const [effect] = await waitUntil(async () => {
        const effects = await c.environment.effects(hop3.name);
        return effects.length > 0 && effects;
      }, 'the third hop');
      const seen = JSON.parse(effect as string) as {
        in: Message['metadata'];
        out: Message['metadata'];
        inId: string;
      };
      assert.equal(seen.in.correlationId, first.id, 'hop 2 message keeps the correlation');
      assert.ok(seen.in.causationId && seen.in.causationId !== first.id, 'hop 3 input was caused by the hop 2 message');
      assert.equal(seen.out.correlationId, first.id, 'three hops later, still the first correlation id');
      assert.equal(seen.out.causationId, seen.inId, 'caused by the message being handled');
    },
  },
  {
    name: 'stop lets the handler in flight finish and gives the waiting messages back',
    asyncHandlersOnly: true,
    async run(c) {
      let release: (() => void) | undefined;
      const name = uniqueCategory('slow');
      const first = c.consumer({
        name,
        concurrency: 1,
        handler: async (m, tx) => {
          if (n(m) === 0) await new Promise<void>((resolve) => (release = resolve));
          await c.environment.writeEffect(tx, name, String(n(m)));
        },
      });
      await first.start();
      await c.environment.transport.publish(
        c.topic,
        [0, 1, 2].map((i) => createMessage({ type: 'OrderPlaced', data: { n: i }, key: 'order-1' })),
      );
      await waitUntil(() => release !== undefined, 'the first handler');
      const stopping = first.stop();
      release?.();
      await stopping;
      assert.deepEqual(await c.environment.effects(name), ['0'], 'the handler in flight finished, nothing else ran');
      const second = c.consumer({
        name,
        handler: (m, tx) => c.environment.writeEffect(tx, name, String(n(m))),
      });
      await second.start();
      await waitUntil(async () => (await c.environment.effects(name)).length === 3, 'the released messages');
      assert.deepEqual(await c.environment.effects(name), ['0', '1', '2']);
    },
  },
  {
    name: 'the dead-letter store lists by consumer, topic, type, error and time; one live record per message',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = uniqueCategory('dlq');
      const other = uniqueCategory('dlq-other');
      const base = Date.UTC(2026, 0, 1);
      const record = (i: number, overrides: Partial<DeadLetter> = {}): DeadLetter => ({
        id: `${consumer}-${i}`,
        consumer,
        topic: c.topic,
        message: createMessage({ type: i % 2 ? 'Odd' : 'Even', data: { i }, key: `k-${i}` }),
        error: { type: i % 3 ? 'TypeError' : 'RangeError', message: `failure number ${i}` },
        reason: 'failed 4 times',
        attempts: 4,
        firstFailureAt: new Date(base + i * 1000 - 500),
        lastFailureAt: new Date(base + i * 1000),
        deadLetteredAt: new Date(base + i * 1000),
        redrives: [],
        state: 'dead',
        ...overrides,
      });
      const records = Array.from({ length: 6 }, (_, i) => record(i));
      for (const r of records) await store.add(r);
      await store.add({ ...record(9), consumer: other, id: `${other}-9` });
      const ids = (list: DeadLetter[]) => list.map((r) => r.id);
      assert.deepEqual(ids(await store.list({ consumer })), ids(records), 'in dead-letter order');
      assert.deepEqual(await store.list({ consumer }), records, 'whole records back');
      assert.deepEqual(ids(await store.list({ consumer, type: 'Odd' })), ids(records.filter((_, i) => i % 2)));
      assert.deepEqual(ids(await store.list({ consumer, error: 'RangeError' })), [`${consumer}-0`, `${consumer}-3`]);
      assert.deepEqual(ids(await store.list({ consumer, error: 'number 4' })), [`${consumer}-4`]);
      assert.deepEqual(
        ids(await store.list({ consumer, since: new Date(base + 2000), until: new Date(base + 3000) })),
        [`${consumer}-2`, `${consumer}-3`],
      );
      assert.deepEqual(ids(await store.list({ topic: c.topic, consumer: other })), [`${other}-9`]);
      assert.deepEqual(await store.list({ consumer, topic: `${c.topic}-none` }), []);

      // A consumer that died between recording and acking records the same failure again: ignored.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-again` });
      assert.equal(await store.get(`${consumer}-again`), undefined);

      const redriven = { ...(records[1] as DeadLetter), state: 'redriven' as const, redrives: [new Date(base + 99)] };
      await store.update(redriven);
      assert.deepEqual(await store.get(redriven.id), redriven);
      assert.deepEqual(ids(await store.list({ consumer, state: 'redriven' })), [redriven.id]);
      assert.equal((await store.list({ consumer })).length, 5);
      // Once the record is no longer live, the message may be dead-lettered again.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-later` });
      assert.ok(await store.get(`${consumer}-later`));
    },
  },
  {
    name: 'the inbox forgets marks older than the retention window',
    async run(c) {
      const inbox = c.environment.inbox;
      if (!inbox) return;
      const consumer = uniqueCategory('inbox');
      const now = Date.now();
      await inbox.add(consumer, 'old', new Date(now - 10_000));
      await inbox.add(consumer, 'new', new Date(now));
      assert.equal(await inbox.has(consumer, 'old'), true);
      assert.equal(await inbox.has(`${consumer}-other`, 'old'), false, 'marks are per consumer');
      await inbox.prune(new Date(now - 5000));
      assert.equal(await inbox.has(consumer, 'old'), false);
      assert.equal(await inbox.has(consumer, 'new'), true);
    },
  },
  ...transactionHandleCases,
  ...competingConsumerCases,
];

/**
 * Registers the consumer pipeline's conformance cases with `node:test`: the
 * pipeline's promises (duplicates, retries, dead letters and redrive, per-key
 * order, correlation, shutdown) on the given transport, inbox and
 * dead-letter store.
 */
export function testConsumerConformance<Tx = undefined>(options: ConsumerConformanceOptions<Tx>): void {
  const transactional = options.transactional ?? false;
  const synchronousHandlers = options.synchronousHandlers ?? false;
  describe(`Consumer conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await options.teardown?.();
    });
    for (const conformanceCase of consumerConformanceCases) {
      // Cases that do not apply to this environment are not registered (a skip would read as a missing service).
      if (conformanceCase.asyncHandlersOnly && synchronousHandlers) continue;
      if (conformanceCase.transactionalOnly && !transactional) continue;
      it(conformanceCase.name, async () => {
        // Closed once, whether the case closed it already or not.
        const once = (env: ConsumerEnvironment<Tx>): ConsumerEnvironment<Tx> => {
          let closing: Promise<void> | undefined;
          return { ...env, close: () => (closing ??= env.close()) };
        };
        const environment = once(await options.createEnvironment());
        const reopened: ConsumerEnvironment<Tx>[] = [];
        const consumers: Consumer[] = [];
        const peers: Transport[] = [];
        const topic = uniqueCategory('topic');
        try {
          await conformanceCase.run({
            environment,
            transactional,
            synchronousHandlers,
            handlersTakeTurns: options.handlersTakeTurns ?? false,
            topic,
            consumer(overrides) {
              const consumer = createConsumer<Tx>({
                name: uniqueCategory('consumer'),
                topic,
                transport: environment.transport,
                pollMs: 20,
                retryPolicy: defaultRetryPolicy({ immediate: 1, delaysMs: [5, 5], jitter: 0 }),
                ...(environment.inbox ? { inbox: environment.inbox } : {}),
                ...(environment.deadLetters ? { deadLetters: environment.deadLetters } : {}),
                ...overrides,
              });
              consumers.push(consumer);
              return consumer;
            },
            andThen: (result, next) => (isPromiseLike(result) ? Promise.resolve(result).then(next) : next()),
            publish(target, messages) {
              const publishing = environment.transport.publish(target, messages);
              if (!synchronousHandlers) return publishing;
              publishing.catch(() => undefined);
              return undefined;
            },
            async peerTransport() {
              if (!environment.peerTransport) return environment.transport;
              const peer = await environment.peerTransport();
              peers.push(peer);
              return peer;
            },
            async reopen() {
              const next = once(await options.createEnvironment());
              reopened.push(next);
              return next;
            },
          });
        } finally {
          for (const consumer of consumers) await consumer.stop();
          for (const peer of peers) await peer.close();
          await environment.close();
          for (const next of reopened) await next.close();
        }
      });
    }
  });
}
