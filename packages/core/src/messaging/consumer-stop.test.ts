import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { createConsumer } from './consumer.ts';
import { getInMemoryInbox } from './consumer-ports.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage } from './message.ts';
import type { Transport } from './transport.ts';

describe('consumer stop', () => {
  it('resolves, and says why, when the inbox pruning in its fetch loop hangs on its backend', async () => {
    const transport = getInMemoryTransport();
    const inner = getInMemoryInbox();
    let pruning = false;
    // A prune waiting for a connection that never frees up.
    const inbox = Object.create(inner, {
      prune: {
        value: () => {
          pruning = true;
          return new Promise<void>(() => {});
        },
      },
    });
    const told: unknown[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox,
      drainTimeoutMs: 100,
      onError: (error) => told.push(error),
      handler: () => {},
    });
    await consumer.start();
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
    await waitUntil(() => pruning, 'the prune after the first receive');
    await settlesWithin(consumer.stop(), 5000, 'the stop');
    assert.equal(consumer.stats().state, 'stopped');
    assert.ok(told.some((error) => isTimeoutError(error) && /fetch loop did not end/.test(String(error))));
  });

  it('ends a start that waits on a backend that never answers: the start rejects saying so and starts nothing', async () => {
    const transport = getInMemoryTransport();
    let declarations = 0;
    let subscribes = 0;
    // The first declaration takes the call and never answers (a pool waiting for a free connection).
    const hanging: Transport = {
      ...transport,
      declareSubscription(topic, group) {
        declarations += 1;
        return declarations === 1 ? new Promise<void>(() => {}) : transport.declareSubscription(topic, group);
      },
      subscribe(topic, group, options) {
        subscribes += 1;
        return transport.subscribe(topic, group, options);
      },
    };
    const told: unknown[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: hanging,
      pollMs: 10,
      onError: (error) => told.push(error),
      handler: () => {},
    });
    const started = consumer.start().then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await waitUntil(() => declarations === 1, 'the declaration that never answers');
    await settlesWithin(consumer.stop(), 5000, 'the stop behind the start');
    const outcome = await settlesWithin(started, 1000, 'the start');
    assert.ok(isTimeoutError(outcome) && /was stopped before it started/.test(String(outcome)), String(outcome));
    assert.deepEqual([subscribes, told, consumer.stats().state], [0, [], 'idle']);
    // Started again with the backend answering, it runs.
    await consumer.start();
    try {
      await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
      await waitUntil(() => consumer.stats().handled === 1, 'the message');
    } finally {
      await consumer.stop();
    }
  });

  it('gives back what a receive returns after the stop stopped waiting for it: the next consumer gets it at once', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('orders', 'billing');
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'o-1', data: {} })]);
    let claimed = false;
    let answer = () => {};
    const released: number[] = [];
    // The first receive claims the message and its answer comes back late (a claim statement held up on its backend).
    const late: Transport = {
      ...transport,
      subscribe(topic, group, options) {
        const subscription = transport.subscribe(topic, group, options);
        return {
          close: () => subscription.close(),
          async receive(max, waitMs, signal) {
            if (claimed) return subscription.receive(max, waitMs, signal);
            claimed = true;
            const deliveries = await subscription.receive(max, 0, new AbortController().signal);
            await new Promise<void>((resolve) => {
              answer = resolve;
            });
            return deliveries.map((d) => ({
              ...d,
              release: (ms: number) => {
                released.push(ms);
                return d.release(ms);
              },
            }));
          },
        };
      },
    };
    let ranFirst = 0;
    const told: string[] = [];
    const first = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport: late,
      drainTimeoutMs: 100,
      onError: (_error, { stage }) => void told.push(stage),
      handler: () => {
        ranFirst += 1;
      },
    });
    await first.start();
    await waitUntil(() => claimed, 'the claim held up');
    await settlesWithin(first.stop(), 5000, 'the stop');
    assert.deepEqual(told, ['receive'], 'the fetch loop it stopped waiting for');
    answer();
    await waitUntil(() => released.length === 1, 'the late delivery given back');
    assert.deepEqual([released, ranFirst], [[0], 0]);
    let ranSecond = 0;
    const second = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      pollMs: 10,
      handler: () => {
        ranSecond += 1;
      },
    });
    await second.start();
    try {
      // Held, it would come back after its 30 s visibility timeout.
      await waitUntil(() => ranSecond === 1, 'the message on the next consumer', 3000);
    } finally {
      await second.stop();
    }
  });
});

describe('consumer maxDeliveries', () => {
  it('dead-letters a message handed out more often than maxDeliveries without settling it, never running the handler', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('orders', 'billing');
    const poison = createMessage({ type: 'OrderPlaced', key: 'o-1', data: {} });
    await transport.publish('orders', [poison]);
    // Three consumers took it and died on it (never settled): each hand-out runs out its visibility.
    const crashed = transport.subscribe('orders', 'billing', { visibilityTimeoutMs: 20 });
    for (let i = 1; i <= 3; i++) {
      const delivery = await waitUntil(
        async () => (await crashed.receive(1, 10, new AbortController().signal))[0],
        `hand-out ${i}`,
      );
      assert.equal(delivery.deliveryCount, i);
    }
    await crashed.close();
    let ran = 0;
    const told: unknown[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      pollMs: 20,
      maxDeliveries: 3,
      onError: (error) => told.push(error),
      handler: () => {
        ran += 1;
      },
    });
    await consumer.start();
    try {
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the poison message dead-lettered');
      assert.equal(ran, 0, 'the handler never ran');
      const [record] = await consumer.deadLetters.list();
      assert.equal(record?.message.id, poison.id);
      assert.equal(record?.reason, 'maxDeliveries reached');
      assert.equal(record?.attempts, 4);
      assert.match(String(told[0]), /delivered 4 times without being settled \(maxDeliveries 3\)/);
      // Others go on.
      await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'o-2', data: {} })]);
      await waitUntil(() => ran === 1, 'the next message handled');
    } finally {
      await consumer.stop();
    }
  });

  it('refuses a maxDeliveries that is not a positive whole number', () => {
    assert.throws(
      () =>
        createConsumer({
          name: 'billing',
          topic: 'orders',
          transport: getInMemoryTransport(),
          maxDeliveries: 0,
          handler: () => {},
        }),
      /maxDeliveries/,
    );
  });
});
