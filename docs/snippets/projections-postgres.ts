import { defineProjection } from '@factline/core';
import { getPostgresEventStore, startPostgresProjections } from '@factline/postgres';
import type pg from 'pg';

// #region define
export const orderTotals = defineProjection<pg.PoolClient>({
  name: 'order_totals',
  handles: ['OrderPlaced'],
  init: async (client) => {
    await client.query('CREATE TABLE IF NOT EXISTS order_totals (order_id text PRIMARY KEY, total numeric)');
  },
  reset: async (client) => {
    await client.query('DELETE FROM order_totals');
  },
  handle: async (events, client) => {
    // `async` is fine here: every query runs in the batch's transaction.
    for (const event of events) {
      const { orderId, total } = event.data as { orderId: string; total: number };
      await client.query('INSERT INTO order_totals (order_id, total) VALUES ($1, $2)', [orderId, total]);
    }
  },
});
// #endregion

/** The async runner: appends an order and waits for its row. `search_path` names the schema of the read model. */
export async function runPostgresProjections(connectionString: string, schema: string) {
  // #region runner
  const store = await getPostgresEventStore({ connectionString, schema });
  const projections = await startPostgresProjections(store, [orderTotals], {
    leaseCheckMs: 1000, // how often a stand-by process tries to take over
    idleCheckMs: 1000, // the polling fallback when no notification arrives
  });
  // #endregion
  try {
    const { position } = await store.append('order-1', [{ type: 'OrderPlaced', data: { orderId: '1', total: 30 } }]);
    await projections.waitFor('order_totals', position);
    const { rows } = await store.pool.query('SELECT order_id, total::float8 AS total FROM order_totals');
    return rows;
  } finally {
    await projections.stop();
    await store.close();
  }
}

/** The same projection inline: its row is there when `append` resolves. */
export async function inlinePostgres(connectionString: string, schema: string) {
  // #region inline
  const store = await getPostgresEventStore({ connectionString, schema, inlineProjections: [orderTotals] });
  // #endregion
  try {
    await store.append('order-2', [{ type: 'OrderPlaced', data: { orderId: '2', total: 12 } }]);
    const { rows } = await store.pool.query('SELECT order_id, total::float8 AS total FROM order_totals');
    return rows;
  } finally {
    await store.close();
  }
}
