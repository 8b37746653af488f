import { type Decider, type Event, type HandleCommandResult, handleCommand } from '@factline/core';
import { getSqliteEventStore, getSqliteSnapshotStore } from '@factline/sqlite';

type ItemAdded = Event<'ItemAdded', { sku: string; price: number }>;
interface Cart {
  items: number;
  total: number;
}
const cartDecider: Decider<Cart, { sku: string; price: number }, ItemAdded> = {
  initialState: () => ({ items: 0, total: 0 }),
  evolve: (cart, event) => ({ items: cart.items + 1, total: cart.total + event.data.price }),
  decide: (command) => [{ type: 'ItemAdded', data: command }],
};

/** Adds `count` items to one cart with snapshots; returns the last result, the stored snapshot and the failures. */
export async function cartWithSnapshots(path: string, count: number) {
  const store = getSqliteEventStore({ path });
  const failures: { message: string; error: unknown }[] = [];
  const log = { warn: (message: string, error: unknown) => failures.push({ message, error }) };
  try {
    // #region snapshots
    const snapshots = getSqliteSnapshotStore({ database: store.database }); // table factline_snapshots
    const addItem = (command: { sku: string; price: number }) =>
      handleCommand(store, 'cart-7', command, cartDecider, {
        snapshots: {
          store: snapshots,
          version: 1, // bump it when evolve or the state changes: older snapshots are then ignored
          every: 100, // write one each time the stream crosses a multiple of 100
          onError: (error, { operation }) => log.warn(`cart snapshot ${operation} failed`, error),
        },
      });
    // #endregion
    let last: HandleCommandResult<Cart, ItemAdded> | undefined;
    for (let i = 0; i < count; i++) {
      last = await addItem({ sku: `sku-${i}`, price: 2 });
      // A test awaits the save; the command itself never waits for it.
      await last.snapshotSaved;
    }
    return { last, snapshot: await snapshots.load<Cart>('cart-7'), failures };
  } finally {
    await store.close();
  }
}
