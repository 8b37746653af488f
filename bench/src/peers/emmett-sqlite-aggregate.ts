/**
 * Emmett's `aggregateStream` on its SQLite store (see emmett-sqlite.ts for how the peer is loaded
 * and how its store behaves): the load half of a command, for the snapshot workload.
 */
import type { Trial } from '../harness.ts';
import { orderData } from '../workloads/payload.ts';
import type { EmmettReadEvent } from './emmett-peer.ts';
import { type EmmettStore, loadPeer, openStore } from './emmett-sqlite.ts';

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
/**
 * Emmett opens a connection per call and sets WAL on it; that PRAGMA now and then rejects the call
 * with "cannot change into wal mode from within a transaction" (or SQLITE_BUSY) although the file is
 * in WAL mode already: such a call is tried again, a few times.
 */
async function retried<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= 5 || !/cannot change into wal mode|SQLITE_BUSY/.test(message)) throw error;
    }
  }
}

export async function emmettAggregateStream(dir: string, events: number, loads: number): Promise<Trial | string> {
  const peer = loadPeer();
  if (typeof peer === 'string') return peer;
  let store: EmmettStore;
  return {
    setup: async () => {
      store = await retried(() => openStore(peer, dir));
      for (let done = 0; done < events; done += 1000) {
        const batch = Array.from({ length: Math.min(1000, events - done) }, (_, j) => ({
          type: 'ItemAdded',
          data: orderData(done + j),
        }));
        await retried(() => store.appendToStream('order-1', batch));
      }
    },
    run: async () => {
      for (let i = 0; i < loads; i++) {
        const { state } = await retried(() =>
          store.aggregateStream<OrderTotals>('order-1', { evolve, initialState: () => ({ items: 0, total: 0 }) }),
        );
        if (state.items !== events) throw new Error(`aggregateStream folded ${state.items} of ${events} events`);
      }
      return loads;
    },
  };
}
