import { defineProjection, type RecordedEvent } from '@factline/core';
import type { Database } from 'better-sqlite3';
import type { OrderEvent } from './order.ts';

export interface OrderSummary {
  order_id: string;
  customer_id: string;
  status: string;
  total: number;
  currency: string;
  item_count: number;
}

/**
 * The seed document's `order_summaries` read model: one row per order with its
 * status, total, currency and item count, kept by an async projection. Its
 * writes commit with the projection's checkpoint, so every event counts exactly
 * once. It reads events through the store's registry: an `OrderPlaced` stored
 * at version 1 arrives here at version 2, with its currency (live and on a rebuild).
 */
export const orderSummaries = defineProjection<Database>({
  name: 'order_summaries',
  handles: ['OrderPlaced', 'OrderPaid', 'OrderShipped', 'OrderCancelled'],
  init: (db) => {
    db.exec(`CREATE TABLE IF NOT EXISTS order_summaries (
      order_id TEXT PRIMARY KEY,
      customer_id TEXT NOT NULL,
      status TEXT NOT NULL,
      total REAL NOT NULL,
      currency TEXT NOT NULL,
      item_count INTEGER NOT NULL
    )`);
  },
  reset: (db) => {
    db.exec('DELETE FROM order_summaries');
  },
  handle: (events: readonly RecordedEvent[], db) => {
    const placed = db.prepare(
      `INSERT INTO order_summaries (order_id, customer_id, status, total, currency, item_count)
       VALUES (?, ?, 'placed', ?, ?, ?)`,
    );
    const status = db.prepare('UPDATE order_summaries SET status = ? WHERE order_id = ?');
    for (const event of events as unknown as OrderEvent[]) {
      switch (event.type) {
        case 'OrderPlaced':
          placed.run(
            event.data.orderId,
            event.data.customerId,
            event.data.total,
            event.data.currency,
            event.data.items.length,
          );
          break;
        case 'OrderPaid':
          status.run('paid', event.data.orderId);
          break;
        case 'OrderShipped':
          status.run('shipped', event.data.orderId);
          break;
        case 'OrderCancelled':
          status.run('cancelled', event.data.orderId);
          break;
      }
    }
  },
});

export function readOrderSummaries(db: Database): OrderSummary[] {
  return db.prepare('SELECT * FROM order_summaries ORDER BY order_id').all() as OrderSummary[];
}
