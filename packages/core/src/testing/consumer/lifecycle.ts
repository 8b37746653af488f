import assert from 'node:assert/strict';
import { isStoreClosedError } from '../../errors/index.ts';
import type { ConsumerErrorStage } from '../../messaging/consumer-options.ts';
import { defaultRetryPolicy } from '../../messaging/consumer-ports.ts';
import { createMessage } from '../../messaging/message.ts';
import type { Subscription, Transport } from '../../messaging/transport.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { assertRetryableRefusal, OUTAGE_BOUND_MS, outcomeWithin } from '../outage.ts';
import { untilAccepted } from '../requirements.ts';
import { settlesWithin, waitUntil } from '../wait-until.ts';
import { type ConsumerConformanceCase, n } from './context.ts';

/**
 * `transport` with its receives counted. Past `spinGuard` calls each receive
 * first yields to the timers, so a consumer that spins on a failing receive
 * fails the case instead of starving the event loop (and hanging the run).
 */
function countReceives(transport: Transport, spinGuard = 1000): { transport: Transport; receives: () => number } {
  let receives = 0;
  const counted: Transport = {
    capabilities: transport.capabilities,
    publish: (topic, messages, options) => transport.publish(topic, messages, options),
    declareSubscription: (topic, group) => transport.declareSubscription(topic, group),
    redeliver: (topic, group, messages) => transport.redeliver(topic, group, messages),
    close: () => transport.close(),
    subscribe(topic, group, options): Subscription {
      const subscription = transport.subscribe(topic, group, options);
      return {
        async receive(max, waitMs, signal) {
          receives += 1;
          if (receives > spinGuard) await new Promise((resolve) => setTimeout(resolve, 5));
          return subscription.receive(max, waitMs, signal);
        },
        close: () => subscription.close(),
      };
    },
  };
  if (transport.defaultDeadLetterStore) {
    const store = transport.defaultDeadLetterStore.bind(transport);
    counted.defaultDeadLetterStore = () => store();
  }
  return { transport: counted, receives: () => receives };
}

const stopOrders = ['the consumer, then the transport', 'the transport, then the consumer'] as const;
const DRAIN_MS = 1000;

/** Lifecycle: stop, a transport closed under a running consumer, a restart of the backend, the backend gone. */
export const lifecycleCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'stop lets the handler in flight finish and gives the waiting messages back',
    requires: ['asyncHandlers'],
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
    name: 'a start() made while stop() drains runs after it: the consumer runs again and handles what follows',
    requires: ['asyncHandlers'],
    async run(c) {
      let release: (() => void) | undefined;
      const name = uniqueCategory('restart');
      const errors: unknown[] = [];
      const consumer = c.consumer({
        name,
        onError: (error) => errors.push(error),
        handler: async (m, tx) => {
          if (n(m) === 0) await new Promise<void>((resolve) => (release = resolve));
          await c.environment.writeEffect(tx, name, String(n(m)));
        },
      });
      await consumer.start();
      await c.environment.transport.publish(c.topic, [
        createMessage({ type: 'OrderPlaced', data: { n: 0 }, key: 'order-1' }),
      ]);
      await waitUntil(() => release !== undefined, 'the first handler');
      // A stop, then a start before the stop's drain ended (a pause and resume, a bus restarted without awaiting).
      const stopping = consumer.stop();
      const starting = consumer.start();
      release?.();
      await settlesWithin(stopping, 10_000, 'the stop');
      await settlesWithin(starting, 10_000, 'the start');
      assert.equal(consumer.stats().state, 'running');
      await c.environment.transport.publish(
        c.topic,
        [1, 2].map((i) => createMessage({ type: 'OrderPlaced', data: { n: i }, key: `order-${i}` })),
      );
      await waitUntil(async () => (await c.environment.effects(name)).length >= 3, 'the messages after the restart');
      assert.deepEqual([...(await c.environment.effects(name))].sort(), ['0', '1', '2']);
      assert.deepEqual(errors, [], 'nothing failed (no receive on a subscription closed under it)');
      await settlesWithin(consumer.stop(), 10_000, 'the last stop');
      assert.equal(consumer.stats().state, 'stopped');
    },
  },
  {
    name: 'a transport closed under a running consumer fails it: receives stop, onError is told, stop() resolves',
    async run(c) {
      const { transport, receives } = countReceives(c.environment.transport);
      const reported: { error: unknown; stage: ConsumerErrorStage }[] = [];
      const consumer = c.consumer({
        name: uniqueCategory('closing'),
        transport,
        onError: (error, context) => reported.push({ error, stage: context.stage }),
        handler: (m, tx) => c.environment.writeEffect(tx, consumer.name, m.id),
      });
      await consumer.start();
      assert.equal(consumer.stats().state, 'running');
      await c.environment.transport.publish(c.topic, [createMessage({ type: 'OrderPlaced', data: {} })]);
      await waitUntil(() => consumer.stats().handled === 1, 'the first message');

      await c.environment.transport.close();
      await waitUntil(() => consumer.stats().state === 'failed', 'the consumer failing');
      const atFailure = receives();
      assert.ok(atFailure < 50, `${atFailure} receives: the consumer spun on the closed transport`);
      assert.ok(
        reported.some((r) => r.stage === 'receive' && isStoreClosedError(r.error)),
        'onError told of the closed transport',
      );
      assert.ok(isStoreClosedError(consumer.stats().lastError?.error));
      await settlesWithin(consumer.stop(), 5000, 'stop()');
      assert.equal(receives(), atFailure, 'no receive after the failure');
      assert.equal(consumer.stats().state, 'failed', 'a failed consumer stays failed once stopped');
    },
  },
  {
    name: 'across a restart of the backend, a running consumer goes on: a message published after it is handled once',
    requires: ['restart'],
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('restarted'),
        // Patient retries: a handler whose connection the restart cut is retried, not dead-lettered.
        retryPolicy: defaultRetryPolicy({ immediate: 2, delaysMs: [100, 500, 1000, 2000], jitter: 0 }),
        handler: (m, tx) => c.environment.writeEffect(tx, consumer.name, m.id),
      });
      await consumer.start();
      const before = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
      await c.environment.transport.publish(c.topic, [before]);
      await waitUntil(() => consumer.stats().handled === 1, 'the message before the restart');
      await c.restart();
      const after = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
      await untilAccepted(() => c.environment.transport.publish(c.topic, [after]), 'the publish after the restart');
      await waitUntil(() => consumer.stats().handled === 2, 'the message after the restart', 30_000);
      assert.equal(consumer.stats().state, 'running');
      assert.equal(consumer.stats().deadLettered, 0);
      const effects = await untilAccepted(() => c.environment.effects(consumer.name), 'reading the effects');
      assert.deepEqual(effects, [before.id, after.id], 'each message applied once');
    },
  },
  ...stopOrders.map(
    (order): ConsumerConformanceCase => ({
      name: `with its backend gone for good, a running consumer (a handler in flight, messages waiting) and its transport stop (${order}) in bounded time`,
      requires: ['asyncHandlers', 'outage'],
      async run(c) {
        let release: () => void = () => undefined;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let reached = 0;
        const consumer = c.consumer({
          name: uniqueCategory('outage'),
          concurrency: 4,
          drainTimeoutMs: DRAIN_MS,
          onError: () => undefined,
          handler: async (m, tx) => {
            reached += 1;
            if (n(m) === 3) await held;
            else await c.environment.writeEffect(tx, consumer.name, String(n(m)));
          },
        });
        await consumer.start();
        // 0–2 on keys of their own; 3 is held in its handler, 4 and 5 wait behind it on its key.
        const key = (i: number) => (i < 3 ? `order-${i}` : 'order-held');
        await c.environment.transport.publish(
          c.topic,
          [0, 1, 2, 3, 4, 5].map((i) => createMessage({ type: 'OrderPlaced', data: { n: i }, key: key(i) })),
        );
        await waitUntil(() => consumer.stats().handled === 3 && reached === 4, 'three handled, the fourth held');
        const resume = await c.outage();
        // The held handler ends with the backend gone: its mark and its ack cannot reach it.
        release();
        const stopConsumer = () => settlesWithin(consumer.stop(), DRAIN_MS + OUTAGE_BOUND_MS, 'consumer.stop()');
        const closeTransport = () =>
          settlesWithin(c.environment.transport.close(), OUTAGE_BOUND_MS, 'transport.close()');
        if (order === stopOrders[0]) {
          await stopConsumer();
          await closeTransport();
        } else {
          await closeTransport();
          await stopConsumer();
        }
        assert.notEqual(consumer.stats().state, 'running');
        assert.equal(
          consumer.stats().handled,
          3,
          'the held message is not counted handled: its ack never reached the backend',
        );
        await resume();
      },
    }),
  ),
  {
    name: 'a consumer started with its backend gone: start() settles in bounded time (refused with a retryable error, or running), and stop() resolves',
    requires: ['outage'],
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('outage-start'),
        onError: () => undefined,
        handler: () => undefined,
      });
      await c.outage();
      assertRetryableRefusal(await outcomeWithin(consumer.start(), 'consumer.start()'), 'consumer.start()');
      await settlesWithin(consumer.stop(), DRAIN_MS + OUTAGE_BOUND_MS, 'consumer.stop()');
      await settlesWithin(c.environment.transport.close(), OUTAGE_BOUND_MS, 'transport.close()');
    },
  },
];
