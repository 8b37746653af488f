import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, defineEventRelay, getInMemoryInbox, type Message } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// A service starts three parts, in any order, each with its own pool as
// separate processes would: the relay, the transport (the service's own
// publisher, which creates the tables), and the consumer. A message written
// before any of them started must reach the consumer once. Each relay is
// started only once it has tried its first publish, so the orders are the
// orders in which the parts act.

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

type Part = 'relay' | 'transport' | 'consumer';
const orders: readonly (readonly Part[])[] = [
  ['relay', 'transport', 'consumer'],
  ['relay', 'consumer', 'transport'],
  ['transport', 'relay', 'consumer'],
  ['transport', 'consumer', 'relay'],
  ['consumer', 'relay', 'transport'],
  ['consumer', 'transport', 'relay'],
];

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

interface Started {
  received: Message[];
  duplicates(): number;
  stop(): Promise<void>;
}

/** Starts the parts in `order`; `relay` starts the relay on a transport of its own. */
async function startInOrder(
  schema: string,
  order: readonly Part[],
  relay: () => Promise<() => Promise<void>>,
): Promise<Started> {
  const received: Message[] = [];
  const stops: (() => Promise<void>)[] = [];
  let duplicates = () => 0;
  const start: Record<Part, () => Promise<void>> = {
    relay: async () => {
      stops.push(await relay());
    },
    transport: async () => {
      const transport = await transportOf(schema);
      stops.push(() => transport.close());
    },
    consumer: async () => {
      const transport = await transportOf(schema);
      const consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        inbox: getInMemoryInbox(),
        pollMs: 50,
        handler: (message) => void received.push(message),
      });
      stops.push(async () => {
        await consumer.stop();
        await transport.close();
      });
      await consumer.start();
      duplicates = () => consumer.stats().duplicates;
    },
  };
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    for (const part of order) await start[part]();
  } catch (error) {
    await stopAll();
    throw error;
  }
  return { received, duplicates: () => duplicates(), stop: stopAll };
}

/** The group's queue is empty, and the handler ran once for the message. */
async function assertDeliveredOnce(schema: string, started: Started, id: string) {
  await waitUntil(() => started.received.length >= 1, 'the message handled', 5000);
  await waitUntil(
    async () => (await pool.query(`SELECT count(*)::int AS n FROM "${schema}".transport_messages`)).rows[0]?.n === 0,
    'the group settled everything',
    5000,
  );
  assert.deepEqual(
    started.received.map((m) => m.id),
    [id],
  );
  assert.equal(started.duplicates(), 0, 'published once');
}

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

  for (const order of orders) {
    it(`outbox relay: ${order.join(', ')}`, async () => {
      const schema = testSchema('startup_outbox');
      schemas.push(schema);
      const outbox = await getPostgresOutbox({ connectionString: postgresUrl, schema, poolSize: 2 });
      const client = await pool.connect();
      let id: string;
      try {
        await client.query('BEGIN');
        [{ id }] = (await outbox.enqueue(client, 'orders', [{ type: 'OrderPlaced', data: {}, key: 'o-1' }])) as [
          Message,
        ];
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      const started = await startInOrder(schema, order, async () => {
        const transport = await transportOf(schema);
        const relay = await startPostgresOutboxRelay(outbox, transport, {
          pollMs: 10,
          leaseCheckMs: 50,
          holdBackoffMaxMs: 40,
        });
        await waitUntil(() => relay.stats().published > 0 || relay.stats().lastError !== undefined, 'a first try');
        return async () => {
          await relay.stop();
          await transport.close();
        };
      });
      try {
        await waitUntil(async () => (await outbox.pending()) === 0, 'the outbox drained', 5000);
        await assertDeliveredOnce(schema, started, id);
      } finally {
        await started.stop();
        await outbox.close();
      }
    });

    it(`event relay: ${order.join(', ')}`, async () => {
      const schema = testSchema('startup_events');
      schemas.push(schema);
      const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 3 });
      const { events } = await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
      const position = events[0]?.position as number;
      let waitFor = async () => undefined as unknown;
      const started = await startInOrder(schema, order, async () => {
        const transport = await transportOf(schema);
        const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
        let tried = false;
        const runner = await startPostgresProjections(store, [relay], {
          initialBackoffMs: 5,
          maxBackoffMs: 40,
          idleCheckMs: 50,
          leaseCheckMs: 50,
          onError: () => {
            tried = true;
          },
        });
        await waitUntil(() => tried || runner.status('orders-relay').checkpoint >= position, 'a first try');
        waitFor = () => runner.waitFor('orders-relay', position, { timeoutMs: 5000 });
        return async () => {
          await runner.stop();
          await transport.close();
        };
      });
      try {
        await waitFor();
        await assertDeliveredOnce(schema, started, events[0]?.id as string);
      } finally {
        await started.stop();
        await store.close();
      }
    });
  }
});
