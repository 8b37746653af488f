import { defineProjection, type Event, handleCommand } from '@factline/core';
import { getSqliteEventStore, startSqliteProjections } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

// #region union
type ItemAdded = Event<'ItemAdded', { sku: string; price: number }>;
type CheckedOut = Event<'CheckedOut', { total: number }>;
type CartEvent = ItemAdded | CheckedOut;
// #endregion

/** Appends a cart's events, then reads them back typed by the union, on a fresh SQLite file. */
export async function typedEvents(path: string) {
  const store = getSqliteEventStore({ path });
  try {
    const decider = {
      initialState: () => ({ total: 0, open: true }),
      evolve: (state: { total: number; open: boolean }, event: CartEvent) =>
        event.type === 'ItemAdded' ? { ...state, total: state.total + event.data.price } : { ...state, open: false },
      decide: (command: { sku: string; price: number }): CartEvent[] => [
        { type: 'ItemAdded', data: { sku: command.sku, price: command.price } },
      ],
    };
    const added = await handleCommand(store, 'cart-7', { sku: 'tea', price: 4 }, decider);
    await store.append('cart-7', [{ type: 'CheckedOut', data: { total: 4 } }]);

    // #region read
    const { events } = await store.readStream<CartEvent>('cart-7');
    const skus = events.flatMap((event) => (event.type === 'ItemAdded' ? [event.data.sku] : [])); // data narrowed by type
    let checkedOut = 0;
    for await (const event of store.readAll<CartEvent>({ types: ['CheckedOut'] })) {
      if (event.type === 'CheckedOut') checkedOut += event.data.total;
    }
    // #endregion

    // #region projection
    const cartTotals = defineProjection<Database, CartEvent>({
      name: 'cart_totals',
      handles: ['ItemAdded'], // a type outside the union does not compile
      init: (db) => {
        db.exec('CREATE TABLE IF NOT EXISTS cart_totals (cart TEXT PRIMARY KEY, total REAL NOT NULL)');
      },
      handle: (events, db) => {
        const add = db.prepare(
          'INSERT INTO cart_totals (cart, total) VALUES (?, ?) ON CONFLICT (cart) DO UPDATE SET total = total + excluded.total',
        );
        for (const event of events) if (event.type === 'ItemAdded') add.run(event.streamId, event.data.price);
      },
    });
    // #endregion
    const runner = await startSqliteProjections(store, [cartTotals]);
    await runner.waitFor('cart_totals', await store.headPosition());
    await runner.stop();
    const row = store.database.prepare('SELECT total FROM cart_totals WHERE cart = ?').get('cart-7') as {
      total: number;
    };
    return {
      total: row.total,
      newEvents: added.newEvents.flatMap((e) => (e.type === 'ItemAdded' ? [e.data.sku] : [])),
      skus,
      checkedOut,
    };
  } finally {
    await store.close();
  }
}
