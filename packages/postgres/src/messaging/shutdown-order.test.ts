import { after } from 'node:test';
import type { Projection } from '@factline/core';
import { testShutdownOrders } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// 24 orders (every rotation both ways, then seeded shuffles). The pool the
// parts share is the application's: it ends last (node-postgres's end() waits
// for every client checked out of it).
const unavailable = await postgresUnavailable();
const schemas: string[] = [];
after(async () => {
  if (unavailable) return;
  for (const schema of schemas) await dropSchema(schema);
});

testShutdownOrders({
  name: 'postgres (one pool)',
  skip: unavailable,
  orders: 24,
  stopWithinMs: 10_000,
  pollMs: 50,
  async openService() {
    const schema = testSchema('shutdown');
    schemas.push(schema);
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 6 });
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
