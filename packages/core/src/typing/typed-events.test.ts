// Type tests: `tsc` (run by `npm test`) fails if an event union stops flowing
// through a read path or handler, or if a wrong type stops being an error.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createConsumer,
  createMessage,
  type Decider,
  defineProjection,
  type Event,
  getInMemoryEventStore,
  getInMemoryTransport,
  handleCommand,
  type Message,
  type MessageOf,
  type Projection,
  type RecordedEvent,
} from '../index.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';

/** Compiles only when `A` and `B` are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectTrue<T extends true>(_proof?: T): void {}

type ItemAdded = Event<'ItemAdded', { sku: string }>;
type CheckedOut = Event<'CheckedOut', { total: number }>;
type CartEvent = ItemAdded | CheckedOut;

const cart: Decider<{ items: number }, { add?: string; checkout?: number }, CartEvent> = {
  initialState: () => ({ items: 0 }),
  evolve: (state, event) => (event.type === 'ItemAdded' ? { items: state.items + 1 } : state),
  decide: (command) =>
    command.add !== undefined
      ? { type: 'ItemAdded', data: { sku: command.add } }
      : { type: 'CheckedOut', data: { total: command.checkout ?? 0 } },
};

describe('typed events', () => {
  it('readStream and readAll return the declared union, narrowed by type', async () => {
    const store = getInMemoryEventStore();
    await store.append('cart-1', [
      { type: 'ItemAdded', data: { sku: 'A-1' } },
      { type: 'CheckedOut', data: { total: 30 } },
    ]);
    const { events } = await store.readStream<CartEvent>('cart-1');
    expectTrue<Equal<(typeof events)[number]['type'], 'ItemAdded' | 'CheckedOut'>>();
    const skus: string[] = [];
    for (const event of events) {
      if (event.type === 'ItemAdded') skus.push(event.data.sku);
      // @ts-expect-error: a CheckedOut event has no sku
      else skus.push(event.data.sku);
    }
    assert.deepEqual(skus, ['A-1', undefined]);

    const totals: number[] = [];
    for await (const event of store.readAll<CartEvent>()) {
      expectTrue<Equal<typeof event.position, number>>();
      if (event.type === 'CheckedOut') totals.push(event.data.total);
      // @ts-expect-error: 'Removed' is not in the union
      if (event.type === 'Removed') totals.push(-1);
    }
    assert.deepEqual(totals, [30]);
  });

  it('without a type argument, reads keep the untyped event', async () => {
    const store = getInMemoryEventStore();
    const { events } = await store.readStream('cart-1');
    expectTrue<Equal<(typeof events)[number], RecordedEvent>>();
    for await (const event of store.readAll()) expectTrue<Equal<typeof event, RecordedEvent>>();
    assert.equal(events.length, 0);
  });

  it("handleCommand's new events keep the decider's union", async () => {
    const store = getInMemoryEventStore();
    const { newEvents, state } = await handleCommand(store, 'cart-2', { add: 'B-2' }, cart);
    expectTrue<Equal<(typeof newEvents)[number]['type'], CartEvent['type']>>();
    const first = newEvents[0];
    assert.ok(first?.type === 'ItemAdded');
    assert.equal(first.data.sku, 'B-2');
    assert.equal(first.streamVersion, 1);
    assert.deepEqual(state, { items: 1 });
    // @ts-expect-error: the data of an ItemAdded event has no total
    assert.equal(first.data.total, undefined);
  });

  it('a projection typed by the union checks handles and narrows its events without casts', async () => {
    const skus: string[] = [];
    const carts = defineProjection<string[], CartEvent>({
      name: 'carts',
      handles: ['ItemAdded'],
      handle: (events, log) => {
        for (const event of events) {
          expectTrue<Equal<typeof event.type, CartEvent['type']>>();
          if (event.type === 'ItemAdded') log.push(event.data.sku);
          // @ts-expect-error: the data of an ItemAdded event has no total
          if (event.type === 'ItemAdded') log.push(String(event.data.total));
        }
      },
    });
    defineProjection<string[], CartEvent>({
      name: 'wrong',
      // @ts-expect-error: 'Removed' is not a type of the union
      handles: ['Removed'],
      handle: () => {},
    });
    // A runner takes any projection of its transaction type, whatever union it reads.
    const taken: Projection<string[]>[] = [carts];

    const store = getInMemoryEventStore();
    await store.append('cart-3', [
      { type: 'ItemAdded', data: { sku: 'C-3' } },
      { type: 'CheckedOut', data: { total: 5 } },
    ]);
    for (const projection of taken) {
      const batch = [];
      for await (const event of store.readAll({ types: projection.handles })) batch.push(event);
      await projection.handle(batch, skus);
    }
    assert.deepEqual(skus, ['C-3', 'undefined']);
  });

  it('an untyped projection handles any type and gets untyped events', () => {
    const any = defineProjection<unknown>({ name: 'any', handles: ['Whatever'], handle: () => {} });
    expectTrue<Equal<Parameters<typeof any.handle>[0], readonly RecordedEvent[]>>();
    assert.deepEqual(any.handles, ['Whatever']);
  });

  it('a consumer typed by a message union narrows message.data by type; untyped, data stays unknown', async () => {
    const transport = getInMemoryTransport();
    const seen: string[] = [];
    const consumer = createConsumer<undefined, MessageOf<CartEvent>>({
      name: 'typed',
      topic: 'carts',
      transport,
      handler: (message) => {
        expectTrue<Equal<typeof message.type, CartEvent['type']>>();
        if (message.type === 'ItemAdded') seen.push(message.data.sku);
        else seen.push(`total ${message.data.total}`);
        // @ts-expect-error: a message of the union may be a CheckedOut, without sku
        return message.data.sku;
      },
    });
    createConsumer({
      name: 'untyped',
      topic: 'carts',
      transport,
      handler: (message) => expectTrue<Equal<typeof message, Message>>(),
    });
    createConsumer<undefined, MessageOf<CartEvent>>({
      name: 'wrong',
      topic: 'carts',
      transport,
      // @ts-expect-error: the handler must take the union's messages, not others
      handler: (message: Message<'Removed', { sku: string }>) => message.data.sku,
    });
    await consumer.start();
    try {
      await transport.publish('carts', [
        createMessage({ type: 'ItemAdded', data: { sku: 'D-4' }, key: 'cart-4' }),
        createMessage({ type: 'CheckedOut', data: { total: 7 }, key: 'cart-4' }),
      ]);
      await waitUntil(() => seen.length === 2, 'both messages handled');
      assert.deepEqual(seen, ['D-4', 'total 7']);
    } finally {
      await settlesWithin(consumer.stop(), 5000, 'consumer.stop()');
      await transport.close();
    }
  });
});
