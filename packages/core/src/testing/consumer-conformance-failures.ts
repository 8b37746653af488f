import assert from 'node:assert/strict';
import { isStoreClosedError, NonRetryableError } from '../errors/index.ts';
import type { ConsumerErrorStage } from '../messaging/consumer-options.ts';
import { createMessage, type Message } from '../messaging/message.ts';
import type { Subscription, Transport } from '../messaging/transport.ts';
import { uniqueCategory } from './conformance/context.ts';
import type { ConsumerConformanceCase } from './consumer-conformance.ts';
import { waitUntil } from './wait-until.ts';

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

/** Resolves true when `work` settles within `ms`, false otherwise. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The consumer's promises off the happy path: restarts, a transport closing under it, failures reported. */
export const consumerFailureCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'given no dead-letter store, dead letters survive a restart on a durable transport: a new consumer lists and redrives them',
    async run(c) {
      const name = uniqueCategory('refunds');
      let fixed = false;
      const handlerOn = (environment: typeof c.environment) => (m: Message, tx: unknown) => {
        if (!fixed) throw new NonRetryableError('card expired');
        return environment.writeEffect(tx, name, m.id);
      };
      const first = c.consumer({ name, deadLetters: undefined, handler: handlerOn(c.environment) });
      await first.start();
      const message = createMessage({ type: 'RefundRequested', data: { n: 1 }, key: 'order-3' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => first.stats().deadLettered === 1, 'the dead letter');
      await first.stop();
      if (!c.environment.transport.capabilities.durable) {
        // Nothing outlives the process here: the consumer keeps them in memory.
        assert.equal((await first.deadLetters.list()).length, 1);
        return;
      }
      await c.environment.close();

      const environment = await c.reopen();
      fixed = true;
      const second = c.consumer({
        name,
        transport: environment.transport,
        inbox: environment.inbox,
        deadLetters: undefined,
        handler: handlerOn(environment),
      });
      const [record, ...others] = await second.deadLetters.list();
      assert.equal(others.length, 0);
      assert.deepEqual(record?.message, message, 'the dead letter, listed before start, after the restart');
      assert.equal(record?.error.message, 'card expired');
      await second.start();
      assert.equal(await second.deadLetters.redrive(record?.id as string), 1);
      await waitUntil(() => second.stats().handled === 1, 'the redriven message');
      assert.deepEqual(await environment.effects(name), [message.id]);
      assert.equal((await second.deadLetters.show(record?.id as string))?.state, 'redriven');
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
      assert.ok(await settlesWithin(consumer.stop(), 5000), 'stop() resolved');
      assert.equal(receives(), atFailure, 'no receive after the failure');
      assert.equal(consumer.stats().state, 'failed', 'a failed consumer stays failed once stopped');
    },
  },
  {
    name: 'failures are reported: a retry policy that throws dead-letters the message with its reason; a throwing onError changes nothing',
    async run(c) {
      const seen: string[] = [];
      const consumer = c.consumer({
        name: uniqueCategory('reported'),
        retryPolicy: () => {
          throw new RangeError('policy bug');
        },
        onError: (error, context) => {
          seen.push(`${context.stage}:${context.message?.key ?? ''}:${(error as Error).message}`);
          throw new Error('the hook failed too');
        },
        handler: (m, tx) => {
          if (m.key === 'bad') throw new TypeError('no such sku');
          return c.environment.writeEffect(tx, consumer.name, m.key);
        },
      });
      await consumer.start();
      await c.environment.transport.publish(c.topic, [
        createMessage({ type: 'OrderPlaced', data: {}, key: 'bad' }),
        createMessage({ type: 'OrderPlaced', data: {}, key: 'good' }),
      ]);
      await waitUntil(() => consumer.stats().deadLettered === 1 && consumer.stats().handled === 1, 'both messages');
      const [record] = await consumer.deadLetters.list();
      assert.equal(record?.error.type, 'TypeError', "the handler's error is recorded");
      assert.match(record?.reason ?? '', /retry policy failed: policy bug/);
      assert.equal(record?.attempts, 1, 'not redelivered');
      assert.deepEqual(seen, ['handler:bad:no such sku', 'policy:bad:policy bug']);
      assert.equal(consumer.stats().errors, 2);
      assert.equal(consumer.stats().lastError?.stage, 'policy');
      assert.deepEqual(await c.environment.effects(consumer.name), ['good']);
    },
  },
];
