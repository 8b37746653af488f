import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createConsumer, defineEventRelay, getInMemoryInbox, type Message } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore, openSqliteDatabase } from '../store/sqlite-event-store.ts';
import { getSqliteTransport } from './sqlite-transport.ts';

// A service starts three parts, in any order, each with its own connection to
// the file as separate processes would: the relay, the transport (the
// service's own publisher, which creates the tables), and the consumer. A
// message written before any of them started must reach the consumer once.
// Each relay is started only once it has tried its first publish, so the
// orders are the orders in which the parts act.

type Part = 'relay' | 'transport' | 'consumer';
const orders: readonly (readonly Part[])[] = [
  ['relay', 'transport', 'consumer'],
  ['relay', 'consumer', 'transport'],
  ['transport', 'relay', 'consumer'],
  ['transport', 'consumer', 'relay'],
  ['consumer', 'relay', 'transport'],
  ['consumer', 'transport', 'relay'],
];

const dir = mkdtempSync(join(tmpdir(), 'factline-start-up-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

interface Started {
  received: Message[];
  duplicates(): number;
  stop(): Promise<void>;
}

/** Starts the parts in `order`; `relay` starts the relay on a transport of its own. */
async function startInOrder(
  path: string,
  order: readonly Part[],
  relay: (path: string) => Promise<() => Promise<void>>,
) {
  const received: Message[] = [];
  const stops: (() => Promise<void>)[] = [];
  let duplicates = () => 0;
  const start: Record<Part, () => Promise<void>> = {
    relay: async () => {
      stops.push(await relay(path));
    },
    transport: async () => {
      const transport = getSqliteTransport({ path });
      stops.push(() => transport.close());
    },
    consumer: async () => {
      const transport = getSqliteTransport({ path, pollIntervalMs: 10 });
      const consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        inbox: getInMemoryInbox(),
        pollMs: 50,
        handler: (message) => void received.push(message),
      });
      await consumer.start();
      duplicates = () => consumer.stats().duplicates;
      stops.push(async () => {
        await consumer.stop();
        await transport.close();
      });
    },
  };
  try {
    for (const part of order) await start[part]();
  } catch (error) {
    for (const stop of stops.reverse()) await stop();
    throw error;
  }
  return {
    received,
    duplicates: () => duplicates(),
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  } satisfies Started;
}

/** Once the relay is idle, the group's queue is empty, and the handler ran once for the message. */
async function assertDeliveredOnce(path: string, started: Started, id: string) {
  await waitUntil(() => started.received.length >= 1, 'the message handled', 5000);
  const db = openSqliteDatabase(path, {});
  try {
    await waitUntil(
      () => (db.prepare('SELECT COUNT(*) AS n FROM factline_transport_messages').get() as { n: number }).n === 0,
      'the group settled everything',
      5000,
    );
  } finally {
    db.close();
  }
  assert.deepEqual(
    started.received.map((m) => m.id),
    [id],
  );
  assert.equal(started.duplicates(), 0, 'published once');
}

describe('sqlite: nothing is lost by start-up order', () => {
  for (const order of orders) {
    it(`outbox relay: ${order.join(', ')}`, async () => {
      const path = join(dir, `outbox-${++files}.db`);
      const db = openSqliteDatabase(path, {});
      const outbox = getSqliteOutbox({ database: db });
      const [message] = db.transaction(() =>
        outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]),
      )();
      const started = await startInOrder(path, order, async (file) => {
        const transport = getSqliteTransport({ path: file });
        const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 10, holdBackoffMaxMs: 40 });
        await waitUntil(() => relay.stats().published > 0 || relay.stats().lastError !== undefined, 'a first try');
        return async () => {
          await relay.stop();
          await transport.close();
        };
      });
      try {
        await waitUntil(() => outbox.pending() === 0, 'the outbox drained', 5000);
        await assertDeliveredOnce(path, started, (message as Message).id);
      } finally {
        await started.stop();
        db.close();
      }
    });

    it(`event relay: ${order.join(', ')}`, async () => {
      const path = join(dir, `events-${++files}.db`);
      const store = getSqliteEventStore({ path });
      const { events } = await store.append('order-1', [{ type: 'OrderPlaced', data: { id: 'o-1' } }]);
      let waitFor = async () => undefined as unknown;
      const started = await startInOrder(path, order, async (file) => {
        const transport = getSqliteTransport({ path: file });
        const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
        let tried = false;
        const runner = await startSqliteProjections(store, [relay], {
          initialBackoffMs: 5,
          maxBackoffMs: 40,
          idleCheckMs: 50,
          onError: () => {
            tried = true;
          },
        });
        const position = events[0]?.position as number;
        await waitUntil(() => tried || runner.status('orders-relay').checkpoint >= position, 'a first try');
        waitFor = () => runner.waitFor('orders-relay', position, { timeoutMs: 5000 });
        return async () => {
          await runner.stop();
          await transport.close();
        };
      });
      try {
        await waitFor();
        await assertDeliveredOnce(path, started, events[0]?.id as string);
      } finally {
        await started.stop();
        await store.close();
      }
    });
  }
});
