import { after } from 'node:test';
import type { Projection } from '@factline/core';
import { testShutdownOrders } from '@factline/core/testing';
import pg from 'pg';
import { type Cluster, privateCluster, stopCluster } from '../fixtures/private-cluster.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// The shutdown orders with the server gone: store, transport, consumer, outbox relay and event relay busy on
// a private cluster, the cluster stopped (fast shutdown), then every part stopped in an order and the pool
// they share ended, each within the bound; the cluster started again for the next order. One order with the
// server up first, as the shared-server suite runs them.
const { cluster, skip, remove } = await privateCluster();
after(remove);

testShutdownOrders({
  name: 'postgres (one pool, a private server stopped under the parts)',
  skip,
  orders: 1,
  outageOrders: 4,
  stopWithinMs: 10_000,
  pollMs: 50,
  outage: () => stopCluster(cluster as Cluster),
  async openService(n) {
    const schema = `outage_${n}`;
    const pool = new pg.Pool({ connectionString: (cluster as Cluster).url, max: 6 });
    // The application's pool: an idle client's error is its to handle (without a listener node-postgres throws it).
    pool.on('error', () => undefined);
    const store = await getPostgresEventStore({ pool, schema });
    const transport = await getPostgresTransport({ pool, schema, pollIntervalMs: 20 });
    const outbox = await getPostgresOutbox({ pool, schema });
    return {
      store,
      transport,
      async enqueue(message) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await outbox.enqueue(client, 'orders', [message]);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      },
      startOutboxRelay: () => startPostgresOutboxRelay(outbox, transport, { pollMs: 20 }),
      startProjections: (projections) => startPostgresProjections(store, projections as Projection<pg.PoolClient>[]),
      close: () => pool.end(),
    };
  },
});
