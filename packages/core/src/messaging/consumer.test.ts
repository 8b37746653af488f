import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { createConsumer } from './consumer.ts';
import { defaultRetryPolicy, NonRetryableError } from './consumer-ports.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage, type Message } from './message.ts';

const fast = { pollMs: 20, retryPolicy: defaultRetryPolicy({ immediate: 1, delaysMs: [5, 5], jitter: 0 }) };

describe('consumer pipeline (in-memory transport)', () => {
  it('a duplicate delivery is applied once', async () => {
    const transport = getInMemoryTransport();
    const applied: string[] = [];
    const consumer = createConsumer({
      ...fast,
      name: 'billing',
      topic: 'orders',
      transport,
      handler: (m) => void applied.push(m.id),
    });
    await consumer.start();
    const message = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
    await transport.publish('orders', [message]);
    await transport.publish('orders', [message]);
    await waitUntil(() => consumer.stats().duplicates === 1, 'the duplicate');
    assert.deepEqual(applied, [message.id]);
    await consumer.stop();
  });

  it('a poison message is retried per policy, then dead-lettered with its metadata, while other keys flow; redrive after a fix applies it once', async () => {
    const transport = getInMemoryTransport();
    let fixed = false;
    const applied: string[] = [];
    const consumer = createConsumer({
      ...fast,
      name: 'stock',
      topic: 'orders',
      transport,
      handler: (m) => {
        if (m.key === 'order-bad' && !fixed) throw new TypeError('no such sku');
        applied.push(`${m.key}:${(m.data as { n: number }).n}`);
      },
    });
    await consumer.start();
    const poison = createMessage({ type: 'OrderPlaced', data: { n: 0 }, key: 'order-bad', metadata: { tenant: 't1' } });
    await transport.publish('orders', [
      poison,
      ...Array.from({ length: 5 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { n: i }, key: `order-${i}` })),
    ]);
    await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
    assert.equal(applied.length, 5, 'the other keys were held up');
    const [record] = await consumer.deadLetters.list({ error: 'no such sku' });
    assert.ok(record);
    assert.deepEqual(record.message, poison);
    assert.equal(record.error.type, 'TypeError');
    assert.match(record.error.stack ?? '', /no such sku/);
    assert.equal(record.attempts, 4); // first run, 1 immediate retry, 2 delayed
    assert.equal(record.consumer, 'stock');
    assert.equal(record.topic, 'orders');
    assert.ok(record.firstFailureAt <= record.lastFailureAt);
    assert.equal(consumer.stats().retries, 3);

    fixed = true;
    assert.equal(await consumer.deadLetters.redrive(record.id), 1);
    await waitUntil(() => applied.includes('order-bad:0'), 'the redriven message');
    assert.equal(await consumer.deadLetters.redrive(record.id), 0, 'a redriven record is not redriven again');
    const after = await consumer.deadLetters.show(record.id);
    assert.equal(after?.state, 'redriven');
    assert.equal(after?.redrives.length, 1);
    assert.equal(applied.filter((a) => a === 'order-bad:0').length, 1);
    await consumer.stop();
  });

  it('a non-retryable error goes straight to the dead-letter queue; discard keeps the record', async () => {
    const transport = getInMemoryTransport();
    let runs = 0;
    const consumer = createConsumer({
      ...fast,
      name: 'mailer',
      topic: 'orders',
      transport,
      handler: () => {
        runs += 1;
        throw new NonRetryableError('address is invalid');
      },
    });
    await consumer.start();
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
    await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
    assert.equal(runs, 1);
    const [record] = await consumer.deadLetters.list();
    assert.equal(record?.attempts, 1);
    assert.equal(await consumer.deadLetters.discard({ type: 'OrderPlaced' }), 1);
    assert.deepEqual(await consumer.deadLetters.list(), []);
    assert.equal((await consumer.deadLetters.list({ state: 'discarded' })).length, 1);
    await consumer.stop();
  });

  it('per-key order holds under parallelism with random failures', async () => {
    const transport = getInMemoryTransport();
    const seen = new Map<string, number[]>();
    let active = 0;
    let peak = 0;
    let seed = 7;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const consumer = createConsumer({
      name: 'ledger',
      topic: 'payments',
      transport,
      concurrency: 6,
      pollMs: 20,
      retryPolicy: defaultRetryPolicy({ immediate: 10 }),
      handler: async (m) => {
        active += 1;
        peak = Math.max(peak, active);
        try {
          await new Promise((resolve) => setImmediate(resolve));
          if (random() < 0.2) throw new Error('flaky');
          const list = seen.get(m.key) ?? [];
          list.push((m.data as { n: number }).n);
          seen.set(m.key, list);
        } finally {
          active -= 1;
        }
      },
    });
    const messages: Message[] = [];
    for (let n = 0; n < 30; n++) {
      for (let k = 0; k < 20; k++) messages.push(createMessage({ type: 'Paid', data: { n }, key: `acct-${k}` }));
    }
    await consumer.start(); // a group receives what is published after it first subscribed
    await transport.publish('payments', messages);
    await waitUntil(() => consumer.stats().handled === messages.length, 'every message', 20_000);
    for (let k = 0; k < 20; k++) {
      assert.deepEqual(
        seen.get(`acct-${k}`),
        Array.from({ length: 30 }, (_, n) => n),
        `key acct-${k} out of order`,
      );
    }
    assert.ok(peak > 1, 'keys should run in parallel');
    assert.ok(peak <= 6, `more than the concurrency limit ran at once (${peak})`);
    assert.ok(consumer.stats().retries > 0, 'the random failures should have caused retries');
    await consumer.stop();
  });

  it("with onDelayedRetry 'dead-letter', a key moves on instead of waiting for a delayed retry", async () => {
    const transport = getInMemoryTransport();
    const applied: number[] = [];
    const consumer = createConsumer({
      name: 'search',
      topic: 'orders',
      transport,
      pollMs: 20,
      onDelayedRetry: 'dead-letter',
      retryPolicy: defaultRetryPolicy({ immediate: 0, delaysMs: [60_000] }),
      handler: (m) => {
        const n = (m.data as { n: number }).n;
        if (n === 1) throw new Error('index down');
        applied.push(n);
      },
    });
    await consumer.start();
    await transport.publish(
      'orders',
      [0, 1, 2].map((n) => createMessage({ type: 'OrderPlaced', data: { n }, key: 'order-9' })),
    );
    await waitUntil(() => applied.length === 2, 'the key moving on');
    assert.deepEqual(applied, [0, 2]);
    assert.equal((await consumer.deadLetters.list())[0]?.reason, 'delayed retry, key moved on');
    await consumer.stop();
  });

  it('correlation and causation are right across three hops through the transport', async () => {
    const transport = getInMemoryTransport();
    const store = getInMemoryEventStore();
    const orders = createConsumer({
      ...fast,
      name: 'inventory',
      topic: 'orders',
      transport,
      handler: async () => {
        await transport.publish('stock', [createMessage({ type: 'StockReserved', data: {} })]);
      },
    });
    const stock = createConsumer({
      ...fast,
      name: 'payments',
      topic: 'stock',
      transport,
      handler: async () => {
        await store.append('payment-1', [{ type: 'PaymentRequested', data: {} }]);
      },
    });
    await orders.start();
    await stock.start();
    const first = createMessage({ type: 'OrderPlaced', data: {} });
    await transport.publish('orders', [first]);
    await waitUntil(async () => (await store.readStream('payment-1')).exists, 'the third hop');
    const [event] = (await store.readStream('payment-1')).events;
    assert.equal(event?.metadata.correlationId, first.id);
    assert.notEqual(event?.metadata.causationId, first.id, 'the event was caused by the second message');
    assert.ok(event?.metadata.causationId);
    await orders.stop();
    await stock.stop();
  });

  it('stop lets the handler in flight finish and gives the waiting messages back', async () => {
    const transport = getInMemoryTransport();
    let release: (() => void) | undefined;
    const started: number[] = [];
    const done: number[] = [];
    const first = createConsumer({
      name: 'slow',
      topic: 'orders',
      transport,
      pollMs: 20,
      concurrency: 1,
      handler: async (m) => {
        const n = (m.data as { n: number }).n;
        started.push(n);
        if (n === 0) await new Promise<void>((resolve) => (release = resolve));
        done.push(n);
      },
    });
    await first.start();
    await transport.publish(
      'orders',
      [0, 1, 2].map((n) => createMessage({ type: 'OrderPlaced', data: { n }, key: 'order-1' })),
    );
    await waitUntil(() => release !== undefined, 'the first handler');
    const stopping = first.stop();
    release?.();
    await stopping;
    assert.deepEqual(done, [0]);
    const second = createConsumer({
      name: 'slow',
      topic: 'orders',
      transport,
      pollMs: 20,
      handler: (m) => void done.push((m.data as { n: number }).n),
    });
    await second.start();
    await waitUntil(() => done.length === 3, 'the released messages');
    assert.deepEqual(done, [0, 1, 2]);
    await second.stop();
  });
});
