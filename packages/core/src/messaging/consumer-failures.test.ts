import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError } from '../errors/index.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { type ConsumerErrorStage, createConsumer } from './consumer.ts';
import { getInMemoryDeadLetterStore, getInMemoryInbox, type Inbox, type RetryPolicy } from './consumer-ports.ts';
import { createEventBus } from './event-bus.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage, type Message } from './message.ts';
import type { Delivery, Subscription, Transport } from './transport.ts';

/** Collects what onError is told. */
const reports = () => {
  const seen: { error: unknown; stage: ConsumerErrorStage; message?: Message }[] = [];
  return {
    seen,
    stages: () => seen.map((r) => r.stage),
    onError: (error: unknown, context: { stage: ConsumerErrorStage; message?: Message }) =>
      void seen.push({ error, stage: context.stage, ...(context.message ? { message: context.message } : {}) }),
  };
};

/** `inner` with its subscriptions' receives (and their deliveries) rewired by `wrap`. */
const rewired = (inner: Transport, wrap: (receive: Subscription['receive']) => Subscription['receive']): Transport => ({
  ...inner,
  subscribe(topic, group, options) {
    const subscription = inner.subscribe(topic, group, options);
    return { receive: wrap(subscription.receive.bind(subscription)), close: () => subscription.close() };
  },
});

const message = (key = 'order-1') => createMessage({ type: 'OrderPlaced', data: {}, key });

describe('consumer failures', () => {
  it('a start whose subscription cannot be declared rejects, is reported at stage start, and a bus reports it too', async () => {
    const transport = getInMemoryTransport();
    const refusing: Transport = {
      ...transport,
      declareSubscription: async () => {
        throw new StorageError('permission denied for schema app');
      },
    };
    const { seen, onError } = reports();
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: refusing,
      onError,
      handler: () => 1,
    });
    await assert.rejects(consumer.start(), /permission denied/);
    assert.deepEqual(
      seen.map((r) => r.stage),
      ['start'],
    );
    assert.equal(consumer.stats().lastError?.stage, 'start');
    await consumer.stop();

    const bus = createEventBus({ transport: refusing, topic: 'orders' });
    await bus.start();
    const late = reports();
    const subscriber = bus.subscribe('late', ['OrderPlaced'], () => undefined, { onError: late.onError });
    await waitUntil(() => late.seen.length === 1, 'the late subscriber reports its failed start');
    assert.equal(late.seen[0]?.stage, 'start');
    assert.equal(subscriber.stats().errors, 1);
    await bus.stop();
  });

  it('a start whose subscribe throws rejects, is reported at stage start, and leaves the consumer idle', async () => {
    const transport = getInMemoryTransport();
    const refusing: Transport = {
      ...transport,
      subscribe: () => {
        throw new StorageError('permission denied for table transport_messages');
      },
    };
    const { seen, onError } = reports();
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: refusing,
      onError,
      handler: () => 1,
    });
    await assert.rejects(consumer.start(), /permission denied/);
    assert.deepEqual(
      seen.map((r) => r.stage),
      ['start'],
    );
    assert.equal(consumer.stats().state, 'idle');
    await settlesWithin(consumer.stop(), 5000, 'consumer.stop()');
  });

  it('a failing receive backs off (100 ms doubling, at most 5 s), is reported each time, and the consumer recovers', async () => {
    const transport = getInMemoryTransport();
    let failures = 9;
    const flaky = rewired(transport, (receive) => async (max, waitMs, signal) => {
      if (failures > 0) {
        failures -= 1;
        throw new StorageError('connection refused', { retryable: true });
      }
      return receive(max, waitMs, signal);
    });
    const waits: number[] = [];
    const { seen, onError } = reports();
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: flaky,
      pollMs: 10,
      onError,
      sleep: async (ms) => {
        waits.push(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
      handler: () => undefined,
    });
    await consumer.start();
    try {
      await transport.publish('orders', [message()]);
      await waitUntil(() => consumer.stats().handled === 1, 'the message after the failures');
    } finally {
      await consumer.stop();
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert.equal(seen.length, 9);
    assert.ok(seen.every((r) => r.stage === 'receive' && (r.error as Error).message === 'connection refused'));
    assert.equal(consumer.stats().errors, 9);
    assert.equal(consumer.stats().state, 'stopped');
  });

  it('a failing inbox is reported with the message, which comes back and is applied once', async () => {
    const transport = getInMemoryTransport();
    const memory = getInMemoryInbox();
    let fail = true;
    const inbox: Inbox = {
      ...memory,
      async has(consumer, id) {
        if (fail) {
          fail = false;
          throw new StorageError('inbox unreachable', { retryable: true });
        }
        return memory.has(consumer, id);
      },
    };
    const { seen, onError } = reports();
    const applied: string[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      pollMs: 10,
      inbox,
      onError,
      handler: (m) => void applied.push(m.id),
    });
    const sent = message();
    await consumer.start();
    try {
      await transport.publish('orders', [sent]);
      await waitUntil(() => consumer.stats().handled === 1, 'the message, after it came back');
    } finally {
      await consumer.stop();
    }
    assert.deepEqual(applied, [sent.id]);
    assert.equal(seen[0]?.stage, 'inbox');
    assert.equal(seen[0]?.message?.id, sent.id);
    assert.equal((seen[0]?.error as Error | undefined)?.message, 'inbox unreachable');
  });

  it('an inbox whose prune throws, or returns no promise, is reported at stage prune and the consumer goes on', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const prunes: Inbox['prune'][] = [
        // An inbox on a synchronous driver: the failed statement throws.
        () => {
          throw new StorageError('SQLITE_BUSY: database is locked', { retryable: true });
        },
        (() => undefined) as unknown as Inbox['prune'],
      ];
      for (const prune of prunes) {
        const transport = getInMemoryTransport();
        const inbox: Inbox = { ...getInMemoryInbox(), prune };
        const { stages, onError } = reports();
        const consumer = createConsumer({
          name: 'billing',
          topic: 'orders',
          transport,
          pollMs: 10,
          inbox,
          onError,
          handler: () => 1,
        });
        await consumer.start();
        try {
          await transport.publish('orders', [message('a')]);
          await waitUntil(() => consumer.stats().handled === 1, 'the first message, with the prune after its receive');
          await transport.publish('orders', [message('b')]);
          await waitUntil(() => consumer.stats().handled === 2, 'the second message, fetched after the prune');
          assert.equal(consumer.stats().state, 'running');
        } finally {
          await consumer.stop();
        }
        assert.deepEqual(stages(), prune === prunes[0] ? ['prune'] : []);
      }
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a fetch loop that fails (a receive answered with no array) is reported and fails the consumer, never left unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const transport = getInMemoryTransport();
    const broken = rewired(transport, () => async () => undefined as unknown as Delivery[]);
    const { seen, onError } = reports();
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: broken,
      pollMs: 10,
      onError,
      handler: () => 1,
    });
    try {
      await consumer.start();
      await waitUntil(() => consumer.stats().state === 'failed', 'the consumer failed');
      assert.deepEqual(
        seen.map((r) => r.stage),
        ['receive'],
      );
      assert.ok(seen[0]?.error instanceof TypeError, `a TypeError, got ${String(seen[0]?.error)}`);
      await settlesWithin(consumer.stop(), 5000, 'consumer.stop()');
      assert.equal(consumer.stats().state, 'failed');
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a failing dead-letter store is reported; the message comes back and is dead-lettered once the store works', async () => {
    const transport = getInMemoryTransport();
    const memory = getInMemoryDeadLetterStore();
    let fail = true;
    const deadLetters = {
      ...memory,
      async add(record: Parameters<typeof memory.add>[0]) {
        if (fail) {
          fail = false;
          throw new StorageError('disk full');
        }
        return memory.add(record);
      },
    };
    const { stages, onError } = reports();
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      pollMs: 10,
      deadLetters,
      retryPolicy: () => ({ action: 'dead-letter', reason: 'poison' }),
      onError,
      handler: () => {
        throw new TypeError('no such sku');
      },
    });
    await consumer.start();
    try {
      await transport.publish('orders', [message()]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter, once the store works');
    } finally {
      await consumer.stop();
    }
    assert.deepEqual(stages(), ['handler', 'dead-letter', 'handler']);
    assert.equal((await consumer.deadLetters.list()).length, 1);
  });

  it('a retry policy that returns no RetryDecision is reported and the message dead-lettered, not redelivered forever', async () => {
    const transport = getInMemoryTransport();
    const { seen, onError } = reports();
    let runs = 0;
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      pollMs: 10,
      retryPolicy: (() => ({ action: 'retry' })) as unknown as RetryPolicy,
      onError,
      handler: () => {
        runs += 1;
        throw new Error('down');
      },
    });
    await consumer.start();
    try {
      await transport.publish('orders', [message()]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
    } finally {
      await consumer.stop();
    }
    assert.equal(runs, 1);
    assert.equal(seen[1]?.stage, 'policy');
    assert.match((seen[1]?.error as Error | undefined)?.message ?? '', /not a RetryDecision/);
    assert.match((await consumer.deadLetters.list())[0]?.reason ?? '', /retry policy failed/);
  });

  it('stop() resolves when a handler never ends and the transport never answers a release', async () => {
    const transport = getInMemoryTransport();
    const stuck = rewired(
      transport,
      (receive) => async (max, waitMs, signal) =>
        (await receive(max, waitMs, signal)).map(
          (d): Delivery => ({ ...d, ack: d.ack, extend: d.extend, release: () => new Promise<void>(() => undefined) }),
        ),
    );
    const { stages, onError } = reports();
    let started = 0;
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: stuck,
      pollMs: 10,
      concurrency: 1,
      drainTimeoutMs: 100,
      onError,
      handler: () => {
        started += 1;
        return new Promise(() => undefined);
      },
    });
    await consumer.start();
    await transport.publish('orders', [message('a'), message('b')]);
    await waitUntil(() => started === 1, 'the handler that never ends');
    await waitUntil(() => consumer.stats().state === 'running', 'running');
    const stopping = Date.now();
    await consumer.stop();
    const took = Date.now() - stopping;
    assert.ok(took < 5000, `stop took ${took} ms`);
    assert.deepEqual(stages(), ['release'], 'the release that never answered is reported');
    assert.equal(consumer.stats().state, 'stopped');
  });

  it('two start() calls at once subscribe once', async () => {
    const transport = getInMemoryTransport();
    let subscribes = 0;
    const counted: Transport = {
      ...transport,
      subscribe(topic, group, options) {
        subscribes += 1;
        return transport.subscribe(topic, group, options);
      },
    };
    const consumer = createConsumer({ name: 'billing', topic: 'orders', transport: counted, handler: () => undefined });
    await Promise.all([consumer.start(), consumer.start()]);
    await consumer.stop();
    assert.equal(subscribes, 1);
  });
});
