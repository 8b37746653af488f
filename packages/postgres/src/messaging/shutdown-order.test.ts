import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, defineEventRelay, getInMemoryInbox } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// Contract 10 on PostgreSQL: every part's stop() or close() resolves, in any
// order of shutting the parts down, while they are busy. Store, transport,
// consumer, outbox relay and event relay: each part is stopped first in one
// order and last in another (every rotation, both ways), and seeded shuffles
// make 24 orders in all. The pool they share is the application's: it ends
// last (node-postgres's end() waits for every client checked out of it).

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

type Part = 'store' | 'transport' | 'consumer' | 'outboxRelay' | 'eventRelay';
const parts: readonly Part[] = ['store', 'transport', 'consumer', 'outboxRelay', 'eventRelay'];

/** 24 distinct orders: every rotation of `parts`, forwards and backwards, then seeded shuffles. */
function orders(): Part[][] {
  const out = new Map<string, Part[]>();
  const add = (order: Part[]) => out.set(order.join(), order);
  for (let r = 0; r < parts.length; r++) {
    const rotated = [...parts.slice(r), ...parts.slice(0, r)];
    add(rotated);
    add([...rotated].reverse());
  }
  let seed = 13;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  while (out.size < 24) {
    const shuffled = [...parts];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as Part, shuffled[i] as Part];
    }
    add(shuffled);
  }
  return [...out.values()];
}

const schemas: string[] = [];
after(async () => {
  if (skip) return;
  for (const schema of schemas) await dropSchema(schema);
});

describe('postgres: shutting a service down', { skip }, () => {
  it('24 orders of stopping store, transport, consumer, outbox relay and event relay all resolve, and the pool ends after them', async () => {
    const all = orders();
    let n = 0;
    for (const order of all) {
      n += 1;
      const schema = testSchema('shutdown');
      schemas.push(schema);
      const pool = new pg.Pool({ connectionString: postgresUrl, max: 6 });
      const store = await getPostgresEventStore({ pool, schema });
      const transport = await getPostgresTransport({ pool, schema, pollIntervalMs: 20 });
      let handled = 0;
      const consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        inbox: getInMemoryInbox(),
        pollMs: 50,
        drainTimeoutMs: 500,
        handler: () => {
          handled += 1;
        },
      });
      await consumer.start();
      const outbox = await getPostgresOutbox({ pool, schema });
      const outboxRelay = await startPostgresOutboxRelay(outbox, transport, { pollMs: 20 });
      const runner = await startPostgresProjections(store, [
        defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] }),
      ]);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await outbox.enqueue(client, 'orders', [{ type: 'Enqueued', data: { n }, key: `o-${n}` }]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      await store.append(`order-${n}`, [{ type: 'OrderPlaced', data: { n } }]);
      await waitUntil(() => handled >= 1, `order ${n}: a message reached the consumer`);

      const stop: Record<Part, () => Promise<unknown>> = {
        store: () => store.close(),
        transport: () => transport.close(),
        consumer: () => consumer.stop(),
        outboxRelay: () => outboxRelay.stop(),
        eventRelay: () => runner.stop(),
      };
      for (const part of order) await settlesWithin(stop[part](), 10_000, `${part} in the order ${order.join(', ')}`);
      await settlesWithin(pool.end(), 10_000, `the pool's end after the order ${order.join(', ')}`);
    }
    assert.equal(n, 24);
  });
});
