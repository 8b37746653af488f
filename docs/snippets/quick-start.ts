import { randomUUID } from 'node:crypto';
import { type Decider, type Event, handleCommand } from '@factline/core';
import { getSqliteEventStore } from '@factline/sqlite';

type CartEvent = Event<'ItemAdded', { sku: string }> | Event<'CheckedOut', { items: number }>;
type CartCommand = { type: 'AddItem'; sku: string } | { type: 'CheckOut' };

const cart: Decider<{ items: string[]; open: boolean }, CartCommand, CartEvent> = {
  initialState: () => ({ items: [], open: true }),
  evolve: (s, e) => (e.type === 'ItemAdded' ? { ...s, items: [...s.items, e.data.sku] } : { ...s, open: false }),
  decide: (command, s) => {
    if (!s.open) throw new Error('this cart is checked out');
    if (command.type === 'AddItem') return [{ type: 'ItemAdded', data: { sku: command.sku } }];
    return [{ type: 'CheckedOut', data: { items: s.items.length } }];
  },
};

export async function quickStart(path = 'shop.db') {
  const store = getSqliteEventStore({ path }); // one file, WAL, durable commits; kept between runs
  const cartId = `cart-${randomUUID()}`; // a new cart on every run
  await store.append(cartId, [{ type: 'ItemAdded', data: { sku: 'tea' } }], { expectedVersion: 'no-stream' });
  const { state, version } = await handleCommand(store, cartId, { type: 'CheckOut' }, cart);
  const { events } = await store.readStream(cartId);
  for await (const e of store.readAll()) console.log(e.position, e.streamId, e.type); // every run's carts
  await store.close();
  return { cartId, state, version, events };
}
