/**
 * Emmett's `aggregateStream` on its SQLite store (see emmett-sqlite.ts for how the peer is loaded
 * and how its store behaves): the load half of a command, for the snapshot workload.
 */
import type { Trial } from '../harness.ts';
import { orderData } from '../workloads/payload.ts';
import { type EmmettReadEvent, type EmmettStore, loadPeer, openStore } from './emmett-sqlite.ts';

interface OrderTotals {
  items: number;
  total: number;
}

const evolve = (state: OrderTotals, event: EmmettReadEvent): OrderTotals => ({
  items: state.items + 1,
  total: state.total + (event.data as { total: number }).total,
});

/**
 * Setup: one stream of `events` `ItemAdded` events (payload.ts's orderData(j)), appended 1,000 at a
 * time. Run: `loads` calls of `aggregateStream` on it, each reading and folding every event; the
 * folded count is checked. Units: loads (states rebuilt).
 */
export async function emmettAggregateStream(dir: string, events: number, loads: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  return {
    setup: async () => {
      store = await openStore(peer, dir);
      for (let done = 0; done < events; done += 1000) {
        const batch = Array.from({ length: Math.min(1000, events - done) }, (_, j) => ({
          type: 'ItemAdded',
          data: orderData(done + j),
        }));
        await store.appendToStream('order-1', batch);
      }
    },
    run: async () => {
      for (let i = 0; i < loads; i++) {
        const { state } = await store.aggregateStream<OrderTotals>('order-1', {
          evolve,
          initialState: () => ({ items: 0, total: 0 }),
        });
        if (state.items !== events) throw new Error(`aggregateStream folded ${state.items} of ${events} events`);
      }
      return loads;
    },
  };
}
