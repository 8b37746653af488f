import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, getInMemoryInbox, type Message, type Projection } from '@factline/core';
import { testStartUpOrders, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// Each part with its own pool, as separate processes would have (core's
// start-up-order suite), and a publish right after a consumer started.

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

let pool: pg.Pool;
const schemas: string[] = [];
before(() => {
  if (!skip) pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
});
after(async () => {
  if (skip) return;
  await pool.end();
  for (const schema of schemas) await dropSchema(schema);
});

const transportOf = (schema: string) =>
  getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 2, listen: false, pollIntervalMs: 20 });

describe('postgres: nothing is lost by start-up order', { skip }, () => {
  it('a message published by another process right after consumer.start() resolved reaches the group', async () => {
    const schema = testSchema('startup_declared');
    schemas.push(schema);
    const publisher = await transportOf(schema);
    try {
      for (let trial = 0; trial < 5; trial++) {
        const received: Message[] = [];
        const transport = await transportOf(schema);
        const consumer = createConsumer({
          name: `group-${trial}`,
          topic: `topic-${trial}`,
          transport,
          inbox: getInMemoryInbox(),
          pollMs: 50,
          handler: (message) => void received.push(message),
        });
        try {
          await consumer.start();
          const [message] = [createMessage({ type: 'Sent', data: { trial } })];
          await publisher.publish(`topic-${trial}`, [message as Message]);
          await waitUntil(() => received.length === 1, `trial ${trial}: the message handled`, 5000);
          assert.equal(received[0]?.id, message?.id);
        } finally {
          await consumer.stop();
          await transport.close();
        }
      }
    } finally {
      await publisher.close();
    }
  });
});

testStartUpOrders({
  name: 'postgres (one schema, a connection per part)',
  skip,
  async openBackend() {
    const schema = testSchema('startup');
    schemas.push(schema);
    const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 3 });
    const outbox = await getPostgresOutbox({ connectionString: postgresUrl, schema, poolSize: 2 });
    return {
      store,
      openTransport: () => transportOf(schema),
      async enqueue() {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const [message] = await outbox.enqueue(client, 'orders', [{ type: 'OrderPlaced', data: {}, key: 'o-1' }]);
          await client.query('COMMIT');
          return message as Message;
        } finally {
          client.release();
        }
      },
      pendingInOutbox: () => outbox.pending(),
      startOutboxRelay: (transport) =>
        startPostgresOutboxRelay(outbox, transport, { pollMs: 10, leaseCheckMs: 50, holdBackoffMaxMs: 40 }),
      startProjections: (projections, options) =>
        startPostgresProjections(store, projections as Projection<pg.PoolClient>[], { ...options, leaseCheckMs: 50 }),
      queued: async () => {
        const { rows } = await pool.query(`SELECT to_regclass($1) AS t`, [`"${schema}".transport_messages`]);
        if (!rows[0]?.t) return 0;
        return (await pool.query(`SELECT count(*)::int AS n FROM "${schema}".transport_messages`)).rows[0]?.n;
      },
      async close() {
        await outbox.close();
        await store.close();
      },
    };
  },
});
