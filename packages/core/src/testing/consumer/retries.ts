import assert from 'node:assert/strict';
import { NonRetryableError } from '../../errors/index.ts';
import { defaultRetryPolicy } from '../../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import { type ConsumerConformanceCase, n } from './context.ts';

/** Retries: a failing message retried per policy, then dead-lettered; redrive; failures reported. */
export const retryCases: readonly ConsumerConformanceCase[] = [
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
    name: 'a delayed retry longer than the visibility timeout holds its key: the messages fetched behind it are not handed out again, here or to another consumer',
    async run(c) {
      const name = uniqueCategory('ledger');
      const runs: number[] = [];
      let inFlight = 0;
      let overlapped = false;
      const reported: string[] = [];
      const handler = (m: Message, tx: unknown) => {
        const i = n(m);
        runs[i] = (runs[i] ?? 0) + 1;
        if (i === 0 && runs[0] === 1) throw new Error('ledger busy');
        const write = () => c.environment.writeEffect(tx, name, String(i));
        if (c.synchronousHandlers) return write();
        return (async () => {
          // One key: two handlers at once means it ran on two consumers.
          inFlight += 1;
          if (inFlight > 1) overlapped = true;
          try {
            await new Promise((resolve) => setTimeout(resolve, 20));
            await write();
          } finally {
            inFlight -= 1;
          }
        })();
      };
      const options = {
        name,
        concurrency: 2,
        visibilityTimeoutMs: 300,
        // Three times the visibility timeout: the messages fetched behind it would come back meanwhile.
        retryPolicy: defaultRetryPolicy({ immediate: 0, delaysMs: [900], jitter: 0 }),
        handler,
        onError: (error: unknown, context: { stage: string }) => {
          reported.push(`${context.stage}: ${error instanceof Error ? error.message : String(error)}`);
        },
      };
      const peer = await c.peerTransport();
      const consumers = [c.consumer(options), c.consumer(options), c.consumer({ ...options, transport: peer })];
      for (const consumer of consumers) await consumer.start();
      await c.environment.transport.publish(
        c.topic,
        [0, 1, 2, 3].map((i) => createMessage({ type: 'Posted', data: { n: i }, key: 'ledger-1' })),
      );
      const settled = () => consumers.reduce((sum, x) => sum + x.stats().handled + x.stats().duplicates, 0);
      await waitUntil(() => settled() >= 4, 'the four messages handled', 15_000);
      // A copy that came back to another consumer would be handled within a visibility timeout or two.
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.deepEqual(await c.environment.effects(name), ['0', '1', '2', '3'], 'each once, in order');
      assert.deepEqual(runs, [2, 1, 1, 1], 'the failing one twice (its retry), the others once');
      assert.equal(overlapped, false, 'the key ran on two consumers at once');
      assert.deepEqual(
        consumers.map((x) => x.stats().duplicates),
        [0, 0, 0],
        'a message fetched behind the retry was delivered again',
      );
      assert.deepEqual(reported, ['handler: ledger busy']);
    },
  },
  {
    name: "a consumer stopped during a delayed retry: the next consumer of the group runs the key's messages in order, the retried one first",
    async run(c) {
      const name = uniqueCategory('handover');
      let failed = false;
      const handler = (m: Message, tx: unknown) => {
        if (n(m) === 0 && !failed) {
          failed = true;
          throw new Error('declined once');
        }
        return c.environment.writeEffect(tx, name, String(n(m)));
      };
      const options = {
        name,
        concurrency: 2,
        retryPolicy: defaultRetryPolicy({ immediate: 0, delaysMs: [1500], jitter: 0 }),
        handler,
      };
      const first = c.consumer(options);
      await first.start();
      await c.environment.transport.publish(
        c.topic,
        [0, 1, 2].map((i) => createMessage({ type: 'Posted', data: { n: i }, key: 'handover-1' })),
      );
      await waitUntil(() => failed, 'the first try of message 0 failed', 15_000);
      // A rolling deploy: stopped during the retry's delay, the next process of the group takes over.
      await first.stop();
      const next = c.consumer(options);
      await next.start();
      await waitUntil(async () => (await c.environment.effects(name)).length >= 3, 'the three applied', 15_000);
      assert.deepEqual(await c.environment.effects(name), ['0', '1', '2'], 'in order, each once');
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
