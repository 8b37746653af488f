import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NonRetryableError } from '../errors/index.ts';
import type { Logger } from '../logging/logger.ts';
import { createConsumer } from '../messaging/consumer.ts';
import { type DeadLetterFilter, getInMemoryDeadLetterStore } from '../messaging/consumer-ports.ts';
import { createEventBus } from '../messaging/event-bus.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createMessage } from '../messaging/message.ts';
import { startOutboxRelay } from '../messaging/outbox-relay.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { createInMemoryOutbox } from '../testing/in-memory-outbox.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { registerTestSdk, type TestSdk } from './fixtures/otel-sdk.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

/** A logger keeping every record, by level. */
const recordingLogger = () => {
  const records: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const at = (level: string) => (obj: object | string, msg?: string) =>
    records.push({ level, obj: typeof obj === 'string' ? {} : (obj as Record<string, unknown>), msg });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, records };
};

describe('metrics and the logger', () => {
  it('counts handled, retried and dead-lettered messages per group, the dead-letter depth and append latency', async () => {
    const store = getInMemoryEventStore();
    await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
    const bus = createEventBus({ transport: getInMemoryTransport(), topic: 'm-orders' });
    let tries = 0;
    const { logger, records } = recordingLogger();
    const errors: unknown[] = [];
    const consumer = bus.subscribe(
      'billing',
      ['Bill'],
      (message) => {
        tries += 1;
        if (message.key === 'bad') throw new NonRetryableError('unbillable');
        if (tries === 1) throw new Error('busy');
      },
      { pollMs: 5, maxRetries: 2, retryDelay: 0, logger, onError: (error) => errors.push(error) },
    );
    await bus.start();
    try {
      await bus.publish('Bill', {}, { key: 'good' });
      await bus.publish('Bill', {}, { key: 'bad' });
      await waitUntil(() => consumer.stats().handled === 1 && consumer.stats().deadLettered === 1, 'both settled');
      const group = { 'messaging.consumer.group.name': 'billing', 'messaging.destination.name': 'm-orders' };
      assert.deepEqual(await sdk.points('factline.consumer.handled'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await sdk.points('factline.consumer.retries'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await sdk.points('factline.consumer.dead_lettered'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await sdk.points('factline.consumer.dead_letter.depth'), [{ attributes: group, value: 1 }]);
      const [append] = await sdk.points('factline.append.duration');
      assert.ok(append, 'an append duration point');
      assert.equal((append.value as { count: number }).count, 1);
      assert.deepEqual(append.attributes, { 'db.system.name': 'in-memory' });

      // The logger got what onError got: the two handler failures, as warnings naming consumer, stage and message.
      assert.equal(errors.length, 2);
      const warned = records.filter((r) => r.level === 'warn');
      assert.deepEqual(
        warned.map((r) => r.obj.err),
        errors,
      );
      assert.ok(warned.every((r) => r.obj.consumer === 'billing' && r.obj.stage === 'handler' && r.obj.messageId));
    } finally {
      await bus.stop();
    }
  });

  it('counts the dead-letter depth of a group per topic, when the group consumes two topics into one store', async () => {
    const transport = getInMemoryTransport();
    const deadLetters = getInMemoryDeadLetterStore();
    const group = 'audit-depth';
    const orders = createConsumer({ name: group, topic: 'd-orders', transport, deadLetters, handler: () => {} });
    const payments = createConsumer({
      name: group,
      topic: 'd-payments',
      transport,
      deadLetters,
      pollMs: 5,
      handler: () => {
        throw new NonRetryableError('card expired');
      },
    });
    await orders.start();
    await payments.start();
    try {
      await transport.publish('d-payments', [createMessage({ type: 'PaymentTaken', data: {} })]);
      await waitUntil(() => payments.stats().deadLettered === 1, 'the dead letter');
      const depth = (await sdk.points('factline.consumer.dead_letter.depth')).filter(
        (p) => p.attributes['messaging.consumer.group.name'] === group,
      );
      assert.deepEqual(depth.map((p) => [p.attributes['messaging.destination.name'], p.value]).sort(), [
        ['d-orders', 0],
        ['d-payments', 1],
      ]);
    } finally {
      await orders.stop();
      await payments.stop();
    }
  });

  it('a dead-letter store failing at collection leaves the depth out, keeps the other points and is logged', async () => {
    const transport = getInMemoryTransport();
    const store = getInMemoryDeadLetterStore();
    let broken = false;
    const deadLetters = {
      ...store,
      add: store.add.bind(store),
      get: store.get.bind(store),
      update: store.update.bind(store),
      list: (filter?: DeadLetterFilter) =>
        broken ? Promise.reject(new Error('dead letters unreachable')) : store.list(filter),
    };
    const { logger, records } = recordingLogger();
    const consumer = createConsumer({
      name: 'dl-broken',
      topic: 'dl-broken-orders',
      transport,
      deadLetters,
      pollMs: 5,
      logger,
      handler: () => {},
    });
    await consumer.start();
    try {
      await transport.publish('dl-broken-orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
      await waitUntil(() => consumer.stats().handled === 1, 'handled');
      broken = true;
      const mine = async (metric: string) =>
        (await sdk.points(metric)).filter((p) => p.attributes['messaging.consumer.group.name'] === 'dl-broken');
      const group = { 'messaging.consumer.group.name': 'dl-broken', 'messaging.destination.name': 'dl-broken-orders' };
      assert.deepEqual(await mine('factline.consumer.handled'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await mine('factline.consumer.lag'), [{ attributes: group, value: 0 }]);
      assert.deepEqual(await mine('factline.consumer.dead_letter.depth'), []);
      const warned = records.filter((r) => r.level === 'warn' && r.obj.consumer === 'dl-broken');
      assert.ok(
        warned.some((r) => (r.obj.err as Error | undefined)?.message === 'dead letters unreachable'),
        'the failed read is logged',
      );
    } finally {
      await consumer.stop();
      await transport.close();
    }
  });

  it('two consumers of one group and topic report the sum of their counts, and the group’s lag and dead letters once', async () => {
    const transport = getInMemoryTransport();
    const deadLetters = getInMemoryDeadLetterStore();
    const topic = 'twin-orders';
    const handler = (message: { key: string }) => {
      if (message.key === 'bad') throw new NonRetryableError('unbillable');
    };
    const twin = () => createConsumer({ name: 'twin', topic, transport, deadLetters, pollMs: 5, handler });
    const a = twin();
    const b = twin();
    const publish = (...keys: string[]) =>
      transport.publish(
        topic,
        keys.map((key) => createMessage({ type: 'Bill', data: {}, key })),
      );
    const group = { 'messaging.consumer.group.name': 'twin', 'messaging.destination.name': topic };
    const points = async (metric: string) =>
      (await sdk.points(metric)).filter((p) => p.attributes['messaging.consumer.group.name'] === 'twin');
    try {
      // Each one alone handles its part, then both run: a restarted consumer's count is counted once.
      await a.start();
      await publish('k1', 'k2', 'k3');
      await waitUntil(() => a.stats().handled === 3, 'a handled three');
      await a.stop();
      await b.start();
      await publish('k4', 'bad');
      await waitUntil(
        () => b.stats().handled === 1 && b.stats().deadLettered === 1,
        'b handled one, dead-lettered one',
      );
      await a.start();
      assert.deepEqual(await points('factline.consumer.handled'), [{ attributes: group, value: 4 }]);
      assert.deepEqual(await points('factline.consumer.dead_lettered'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await points('factline.consumer.dead_letter.depth'), [{ attributes: group, value: 1 }]);
      assert.deepEqual(await points('factline.consumer.lag'), [{ attributes: group, value: 0 }]);
      // One stopped while the other runs: its count stays in the sum, so the counter never goes down.
      await b.stop();
      assert.deepEqual(await points('factline.consumer.handled'), [{ attributes: group, value: 4 }]);
    } finally {
      await a.stop();
      await b.stop();
      await transport.close();
    }
  });

  it('a group on one topic of two transports reports the lag and dead letters of both, summed', async () => {
    const topic = 'split-orders';
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler = async (message: { key: string }) => {
      if (message.key === 'bad') throw new NonRetryableError('unbillable');
      await held;
    };
    const sides = [getInMemoryTransport(), getInMemoryTransport()].map((transport) => ({
      transport,
      consumer: createConsumer({
        name: 'split',
        topic,
        transport,
        deadLetters: getInMemoryDeadLetterStore(),
        pollMs: 5,
        handler,
      }),
    }));
    const group = { 'messaging.consumer.group.name': 'split', 'messaging.destination.name': topic };
    const points = async (metric: string) =>
      (await sdk.points(metric)).filter((p) => p.attributes['messaging.consumer.group.name'] === 'split');
    try {
      for (const { transport, consumer } of sides) {
        await consumer.start();
        await transport.publish(topic, [
          createMessage({ type: 'Bill', data: {}, key: 'held' }),
          createMessage({ type: 'Bill', data: {}, key: 'bad' }),
        ]);
      }
      await waitUntil(() => sides.every((s) => s.consumer.stats().deadLettered === 1), 'a dead letter on each side');
      assert.deepEqual(await points('factline.consumer.dead_lettered'), [{ attributes: group, value: 2 }]);
      assert.deepEqual(await points('factline.consumer.dead_letter.depth'), [{ attributes: group, value: 2 }]);
      // The held message of each transport is in delivery: waiting for the group, not acknowledged.
      assert.deepEqual(await points('factline.consumer.lag'), [{ attributes: group, value: 2 }]);
      const [age] = await points('factline.consumer.lag.duration');
      assert.ok((age?.value as number) >= 0 && (age?.value as number) < 60, `the oldest of either, got ${age?.value}`);
    } finally {
      release();
      for (const { transport, consumer } of sides) {
        await consumer.stop();
        await transport.close();
      }
    }
  });

  it('counts what every outbox relay of the process published, and the rows of every outbox', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('r-orders', 'billing');
    const before = (await sdk.points('factline.relay.published'))[0]?.value ?? 0;
    const waiting = (rows: number, ageMs: number) => async () => ({ rows, oldestAt: Date.now() - ageMs });
    const first = Object.assign(createInMemoryOutbox(), { backlog: waiting(2, 10_000) });
    const second = Object.assign(createInMemoryOutbox(), { backlog: waiting(1, 30_000) });
    const a = startOutboxRelay(first, transport, { pollMs: 5, leaseCheckMs: 20 });
    const b = startOutboxRelay(second, transport, { pollMs: 5, leaseCheckMs: 20 });
    try {
      const row = { type: 'OrderPlaced', data: {}, key: 'k' };
      first.enqueue('r-orders', [row, row, row]);
      second.enqueue('r-orders', [row]);
      await waitUntil(() => first.pending() === 0 && second.pending() === 0, 'both outboxes relayed');
      assert.equal(a.stats().published + b.stats().published, 4);
      assert.deepEqual(await sdk.points('factline.relay.published'), [
        { attributes: {}, value: (before as number) + 4 },
      ]);
      assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 3 }]);
      const [lag] = await sdk.points('factline.relay.lag');
      assert.ok(
        (lag?.value as number) >= 30 && (lag?.value as number) < 60,
        `the oldest row of either, got ${lag?.value}`,
      );
      await a.stop();
      // A relay stopped keeps its count in the total: the counter never goes down.
      second.enqueue('r-orders', [row]);
      await waitUntil(() => second.pending() === 0, 'the second relayed again');
      assert.deepEqual(await sdk.points('factline.relay.published'), [
        { attributes: {}, value: (before as number) + 5 },
      ]);
    } finally {
      await a.stop();
      await b.stop();
      await transport.close();
    }
  });

  it('refuses a logger without the four levels', () => {
    assert.throws(
      () =>
        createEventBus({ transport: getInMemoryTransport() }).subscribe('g', ['T'], () => undefined, {
          logger: { info: () => {} } as unknown as Logger,
        }),
      /logger: must be a logger with debug, info, warn and error/,
    );
  });
});
