import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { ValidationError } from '../errors/index.ts';
import { defineMessage } from '../schema/define.ts';
import { createSchemaRegistry } from '../schema/registry.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { registerTestSdk } from '../tracing/fixtures/otel-sdk.ts';
import { defaultRetryPolicy } from './consumer-ports.ts';
import { createEventBus } from './event-bus.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import type { Message } from './message.ts';

const fast = { pollMs: 20, retryPolicy: defaultRetryPolicy({ immediate: 1, delaysMs: [5], jitter: 0 }) };

describe('event bus (in-memory transport)', () => {
  it('fans out: three groups each receive every event of their types exactly once', async () => {
    const bus = createEventBus({ transport: getInMemoryTransport() });
    assert.equal(bus.topic, 'events');
    const seen: Record<string, string[]> = { inventory: [], payment: [], notification: [] };
    const inventory = bus.subscribe('inventory', ['OrderPlaced'], (m) => void seen.inventory?.push(m.id), fast);
    const payment = bus.subscribe('payment', ['OrderPlaced'], (m) => void seen.payment?.push(m.id), fast);
    const notification = bus.subscribe(
      'notification',
      ['OrderPlaced', 'OrderShipped'],
      (m) => void seen.notification?.push(m.id),
      fast,
    );
    await bus.start();

    const placed: string[] = [];
    const shipped: string[] = [];
    for (let i = 0; i < 5; i++) {
      placed.push((await bus.publish('OrderPlaced', { i }, { key: `order-${i}` })).id);
      shipped.push((await bus.publish('OrderShipped', { i }, { key: `order-${i}` })).id);
    }
    await bus.publish('Unrelated', {});
    // Every group settles every message of the topic: the ones of other types are acknowledged unhandled.
    await waitUntil(
      () => [inventory, payment, notification].every((c) => c.stats().handled === 11),
      'all groups to settle all messages',
    );
    await bus.stop();

    assert.deepEqual(seen.inventory, placed);
    assert.deepEqual(seen.payment, placed);
    assert.deepEqual(
      [...(seen.notification ?? [])].sort(),
      [...placed, ...shipped].sort(),
      'notification gets both types, once each',
    );
    for (const consumer of [inventory, payment, notification]) assert.equal(consumer.stats().duplicates, 0);
  });

  it('a failing handler in one group does not affect the others', async () => {
    const bus = createEventBus({ transport: getInMemoryTransport(), topic: 'orders' });
    const payments: number[] = [];
    const notes: number[] = [];
    const inventory = bus.subscribe(
      'inventory',
      ['OrderPlaced'],
      (m) => {
        if ((m.data as { i: number }).i === 1) throw new Error('out of stock');
      },
      fast,
    );
    const payment = bus.subscribe(
      'payment',
      ['OrderPlaced'],
      (m) => void payments.push((m.data as { i: number }).i),
      fast,
    );
    bus.subscribe('notification', ['OrderPlaced'], (m) => void notes.push((m.data as { i: number }).i), fast);
    await bus.start();
    for (let i = 0; i < 3; i++) await bus.publish('OrderPlaced', { i }, { key: `order-${i}` });

    await waitUntil(() => inventory.stats().deadLettered === 1, 'the failing message dead-lettered in inventory');
    await waitUntil(() => payments.length === 3 && notes.length === 3, 'the other groups');
    await bus.stop();

    assert.deepEqual(
      payments.sort((a, b) => a - b),
      [0, 1, 2],
    );
    assert.deepEqual(
      notes.sort((a, b) => a - b),
      [0, 1, 2],
    );
    assert.equal(inventory.stats().handled, 2);
    assert.equal(payment.stats().retries, 0);
    const [dead] = await inventory.deadLetters.list();
    assert.deepEqual(dead?.message.data, { i: 1 });
    assert.deepEqual(await payment.deadLetters.list(), []);
  });

  it('correlation flows from a published message to what a subscriber publishes', async () => {
    const bus = createEventBus({ transport: getInMemoryTransport() });
    const received: Message[] = [];
    bus.subscribe(
      'payment',
      ['OrderPlaced'],
      async (m) => {
        await bus.publish('PaymentCharged', { orderId: (m.data as { orderId: string }).orderId });
      },
      fast,
    );
    bus.subscribe('audit', ['PaymentCharged'], (m) => void received.push(m), fast);
    await bus.start();

    const placed = await bus.publish('OrderPlaced', { orderId: '1' }, { metadata: { correlationId: 'checkout-1' } });
    const started = await bus.publish('OrderPlaced', { orderId: '2' });
    assert.equal(started.metadata.correlationId, started.id, 'without one, a message starts its own correlation');
    await waitUntil(() => received.length === 2, 'the charges');
    await bus.stop();

    const byOrder = new Map(received.map((m) => [(m.data as { orderId: string }).orderId, m]));
    assert.equal(byOrder.get('1')?.metadata.correlationId, 'checkout-1');
    assert.equal(byOrder.get('1')?.metadata.causationId, placed.id);
    assert.equal(byOrder.get('2')?.metadata.correlationId, started.id);
    assert.equal(byOrder.get('2')?.metadata.causationId, started.id);
  });

  it('refuses a repeated group and empty type lists', () => {
    const bus = createEventBus({ transport: getInMemoryTransport() });
    bus.subscribe('a', ['X'], () => {});
    assert.throws(() => bus.subscribe('a', ['X'], () => {}), ValidationError);
    assert.throws(() => bus.subscribe('b', [], () => {}), ValidationError);
  });

  it('refuses subscriber options the bus sets itself (name, topic, transport, handler), naming each', () => {
    const bus = createEventBus({ transport: getInMemoryTransport(), topic: 'orders' });
    const given = { topic: 'payments', name: 'billing-v2', transport: getInMemoryTransport(), handler: () => {} };
    assert.throws(
      () => bus.subscribe('billing', ['OrderPlaced'], () => {}, given as never),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['options.name', 'options.topic', 'options.transport', 'options.handler'].every((path) =>
          error.issues.some((issue) => issue.path === path && /set by the bus/.test(issue.message)),
        ),
    );
    // Nothing subscribed: the group is free.
    bus.subscribe('billing', ['OrderPlaced'], () => {});
  });
});

describe('event bus start', () => {
  it('is all or nothing: a subscription that fails to start stops those started, start() rejects, a retry starts all', async () => {
    const transport = getInMemoryTransport();
    let refusing = true;
    const flaky = {
      ...transport,
      declareSubscription: async (topic: string, group: string) => {
        if (refusing && group === 'payment') throw new Error('payment: declare refused');
        return transport.declareSubscription(topic, group);
      },
    };
    const bus = createEventBus({ transport: flaky });
    const stages: string[] = [];
    const handled: string[] = [];
    const inventory = bus.subscribe('inventory', ['OrderPlaced'], () => void handled.push('inventory'), fast);
    const payment = bus.subscribe('payment', ['OrderPlaced'], () => void handled.push('payment'), {
      ...fast,
      onError: (_error, context) => void stages.push(context.stage),
    });
    try {
      await assert.rejects(bus.start(), /payment: declare refused/);
      await waitUntil(() => inventory.stats().state !== 'idle', 'the inventory consumer started and stopped');
      assert.equal(inventory.stats().state, 'stopped', 'the subscription started is stopped again');
      assert.notEqual(payment.stats().state, 'running');
      assert.deepEqual(stages, ['start'], 'the failed start is reported');
      // Not running: a subscription made now waits for the next start.
      const audit = bus.subscribe('audit', ['OrderPlaced'], () => void handled.push('audit'), fast);
      assert.equal(audit.stats().state, 'idle');

      refusing = false;
      await bus.start();
      assert.deepEqual(
        [inventory, payment, audit].map((c) => c.stats().state),
        ['running', 'running', 'running'],
      );
      await bus.publish('OrderPlaced', {});
      await waitUntil(() => handled.length === 3, 'each group handling the event');
      assert.deepEqual([...handled].sort(), ['audit', 'inventory', 'payment']);
    } finally {
      await bus.stop();
    }
  });
});

describe('event bus with schemas', () => {
  it('acknowledges a type it was not subscribed to without decoding it: no retry, no dead letter', async () => {
    const schemas = createSchemaRegistry(
      [defineMessage({ type: 'OrderPlaced', version: 1, schema: z.object({ order: z.string() }) })],
      { unknownTypes: 'error' },
    );
    const bus = createEventBus({ transport: getInMemoryTransport() });
    const handled: string[] = [];
    const errors: unknown[] = [];
    const inventory = bus.subscribe('inventory', ['OrderPlaced'], (m) => void handled.push(m.type), {
      ...fast,
      schemas,
      onError: (error) => errors.push(error),
    });
    await bus.start();
    try {
      // A type the registry cannot read (unknown to it), then a wanted one, on one key.
      await bus.publish('InvoiceSent', { invoice: 'i-1' }, { key: 'order-1' });
      await bus.publish('OrderPlaced', { order: 'o-1' }, { key: 'order-1' });
      await waitUntil(() => handled.length === 1, 'the wanted type handled');
      assert.deepEqual(handled, ['OrderPlaced'], errors.map(String).join(' | '));
      assert.deepEqual(errors, [], 'the other type decoded (and failed) before the filter');
      assert.equal(inventory.stats().deadLettered, 0);
      assert.equal(inventory.stats().retries, 0);
    } finally {
      await bus.stop();
    }
  });

  it('refuses schemas that are not a registry', () => {
    const bus = createEventBus({ transport: getInMemoryTransport() });
    assert.throws(() => bus.subscribe('g', ['A'], () => undefined, { schemas: {} as never }), ValidationError);
    assert.throws(() => createEventBus({ transport: getInMemoryTransport(), schemas: {} as never }), ValidationError);
  });

  it("with the bus's schemas, publish validates and stamps the version: a consumer does not upcast current data", async () => {
    // ShipOrder v2 gained `carrier`; a v1 message is upcast to the post.
    const schemas = createSchemaRegistry([
      defineMessage({
        type: 'ShipOrder',
        version: 2,
        schema: z.object({ orderId: z.string(), carrier: z.enum(['post', 'courier']) }),
        upcasters: { 1: (v1: { orderId: string }) => ({ ...v1, carrier: 'post' as const }) },
      }),
    ]);
    const transport = getInMemoryTransport();
    const bus = createEventBus({ transport, schemas });
    const received: unknown[] = [];
    bus.subscribe('shipping', ['ShipOrder'], (m) => void received.push(m.data), fast);
    await bus.start();
    try {
      const sent = await bus.publish('ShipOrder', { orderId: 'o-1', carrier: 'courier' });
      assert.equal(sent.headers['factline-schema-version'], '2');
      await assert.rejects(bus.publish('ShipOrder', { orderId: 'o-2', carrier: 'pigeon' }), ValidationError);
      // An old producer's message (no header: version 1) is still upcast.
      await transport.publish('events', [{ ...sent, id: 'old-1', data: { orderId: 'o-3' }, headers: {} } as Message]);
      await waitUntil(() => received.length === 2, 'both delivered');
      assert.deepEqual(received, [
        { orderId: 'o-1', carrier: 'courier' },
        { orderId: 'o-3', carrier: 'post' },
      ]);
    } finally {
      await bus.stop();
    }
  });
});

describe('event bus publish options', () => {
  it('refuses an unknown option, naming it, and publishes nothing', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('events', 'g');
    const bus = createEventBus({ transport });
    // Before: `delay` was ignored and the message went out at once.
    await assert.rejects(bus.publish('OrderPlaced', {}, { delay: 5000 } as never), (error) => {
      assert.ok(error instanceof ValidationError);
      assert.match(error.message, /delay/);
      return true;
    });
    await assert.rejects(bus.publish('OrderPlaced', {}, null as never), ValidationError);
    assert.deepEqual(await transport.subscribe('events', 'g').receive(10, 0, new AbortController().signal), []);
    await transport.close();
  });
});

describe('event bus publish with tracing on', () => {
  it('refuses metadata that is not an object, as without tracing, and publishes nothing', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('events', 'g');
    const bus = createEventBus({ transport });
    const sdk = registerTestSdk();
    try {
      for (const metadata of ['checkout-1', ['checkout-1'], null]) {
        await assert.rejects(bus.publish('OrderPlaced', {}, { metadata } as never), ValidationError, String(metadata));
      }
    } finally {
      await sdk.shutdown();
    }
    assert.deepEqual(await transport.subscribe('events', 'g').receive(10, 0, new AbortController().signal), []);
    await transport.close();
  });
});
