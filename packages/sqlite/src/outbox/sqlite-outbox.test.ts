import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  createConsumer,
  getInMemoryInbox,
  getInMemoryTransport,
  type Message,
  type Transport,
  ValidationError,
} from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { openSqliteDatabase } from '../store/sqlite-event-store.ts';
import { getSqliteOutbox, startSqliteOutboxRelay } from './sqlite-outbox.ts';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'factline-outbox-'));
  const db = openSqliteDatabase(join(dir, 'app.db'), {});
  db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL)');
  const outbox = getSqliteOutbox({ database: db });
  const cleanup = () => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { db, outbox, cleanup };
}

/** Subscribes a consumer group first (the in-memory transport keeps what is published after that). */
async function collect(transport: Transport, topic = 'orders') {
  const received: Message[] = [];
  const consumer = createConsumer({
    name: 'billing',
    topic,
    transport,
    inbox: getInMemoryInbox(),
    pollMs: 10,
    handler: (message) => void received.push(message),
  });
  await consumer.start();
  return { received, consumer };
}

test('enqueue outside a transaction is refused', () => {
  const { db, outbox, cleanup } = setup();
  try {
    assert.throws(() => outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: {} }]), ValidationError);
    assert.equal(outbox.pending(), 0);
  } finally {
    cleanup();
  }
});

test("a rolled-back transaction's messages are never published; a committed one's are, with its rows", async () => {
  const { db, outbox, cleanup } = setup();
  const transport = getInMemoryTransport();
  const { received, consumer } = await collect(transport);
  const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 10 });
  try {
    const place = db.transaction((id: string, fail: boolean) => {
      db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run(id, 10);
      outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id }, key: id }]);
      if (fail) throw new Error('business rule failed');
    });
    assert.throws(() => place('o-rolled-back', true), /business rule failed/);
    place('o-committed', false);

    await waitUntil(() => received.length === 1, 'the committed message');
    assert.deepEqual(received[0]?.data, { id: 'o-committed' });
    const orders = db.prepare('SELECT id FROM orders ORDER BY id').all() as { id: string }[];
    assert.deepEqual(
      orders.map((o) => o.id),
      ['o-committed'],
    );
    await waitUntil(() => outbox.pending() === 0, 'the published row deleted');
    // A later commit is published too, and the rolled-back one still never appears.
    place('o-2', false);
    await waitUntil(() => received.length === 2, 'the second committed message');
    assert.deepEqual(
      received.map((m) => (m.data as { id: string }).id),
      ['o-committed', 'o-2'],
    );
  } finally {
    await relay.stop();
    await consumer.stop();
    await transport.close();
    cleanup();
  }
});

test('messages of a key arrive in enqueue order, across transactions, topics and batches', async () => {
  const { db, outbox, cleanup } = setup();
  const transport = getInMemoryTransport();
  const orders = await collect(transport, 'orders');
  const audit = await collect(transport, 'audit');
  // Everything is in the outbox before the relay starts: batches of 7 cut through the runs.
  for (let i = 0; i < 30; i++) {
    db.transaction(() => {
      outbox.enqueue(db, 'orders', [
        { type: 'Step', data: { i, n: 0 }, key: `k-${i % 3}` },
        { type: 'Step', data: { i, n: 1 }, key: `k-${i % 3}` },
      ]);
      if (i % 4 === 0) outbox.enqueue(db, 'audit', [{ type: 'Audited', data: { i }, key: 'audit' }]);
    })();
  }
  const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 10, batchSize: 7 });
  try {
    await waitUntil(() => orders.received.length === 60 && audit.received.length === 8, 'every message');
    for (let k = 0; k < 3; k++) {
      const seen = orders.received
        .filter((m) => m.key === `k-${k}`)
        .map((m) => {
          const { i, n } = m.data as { i: number; n: number };
          return i * 2 + n;
        });
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
        `key k-${k} in order`,
      );
      assert.equal(seen.length, 20);
    }
    assert.deepEqual(
      audit.received.map((m) => (m.data as { i: number }).i),
      [0, 4, 8, 12, 16, 20, 24, 28],
    );
    await waitUntil(() => outbox.pending() === 0, 'the outbox emptied');
    assert.equal(relay.stats().published, 68);
  } finally {
    await relay.stop();
    await orders.consumer.stop();
    await audit.consumer.stop();
    await transport.close();
    cleanup();
  }
});

test('a relay failing between publish and delete publishes again; the inbox applies each message once', async () => {
  const { db, outbox, cleanup } = setup();
  const inner = getInMemoryTransport();
  let failOnce = true;
  const transport: Transport = {
    ...inner,
    capabilities: inner.capabilities,
    subscribe: inner.subscribe.bind(inner),
    redeliver: inner.redeliver.bind(inner),
    close: inner.close.bind(inner),
    async publish(topic, messages, options) {
      await inner.publish(topic, messages, options);
      if (failOnce) {
        failOnce = false;
        throw new Error('connection lost after publishing');
      }
    },
  };
  const received: Message[] = [];
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox: getInMemoryInbox(),
    pollMs: 10,
    handler: (message) => void received.push(message),
  });
  await consumer.start();
  const errors: unknown[] = [];
  const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 10, onError: (e) => errors.push(e) });
  try {
    db.transaction(() => {
      outbox.enqueue(db, 'orders', [
        { type: 'A', data: { n: 1 }, key: 'o-1' },
        { type: 'B', data: { n: 2 }, key: 'o-1' },
      ]);
    })();
    await waitUntil(() => relay.stats().published === 2 && outbox.pending() === 0, 'the republish');
    await waitUntil(() => consumer.stats().handled + consumer.stats().duplicates === 4, 'both copies handled');
    assert.equal(errors.length, 1);
    assert.equal(relay.stats().failures, 1);
    assert.deepEqual(
      received.map((m) => m.type),
      ['A', 'B'],
    );
    assert.equal(consumer.stats().duplicates, 2);
  } finally {
    await relay.stop();
    await consumer.stop();
    await transport.close();
    cleanup();
  }
});
