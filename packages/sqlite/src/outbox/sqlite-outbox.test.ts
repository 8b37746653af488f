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

test('an enqueue that fails part-way writes none of its batch, even when the caller goes on and commits', () => {
  const { db, outbox, cleanup } = setup();
  try {
    const [first] = db.transaction(() => outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { n: 1 } }]))();
    const fresh = { id: 'fresh-1', type: 'OrderPlaced', data: { n: 2 } };
    const again = { id: first?.id as string, type: 'OrderPlaced', data: { n: 1 } };
    db.transaction(() => {
      db.prepare("INSERT INTO orders (id, total) VALUES ('o-2', 2)").run();
      // The second message's id is still in the outbox: the enqueue fails, and the caller carries on.
      assert.throws(() => outbox.enqueue(db, 'orders', [fresh, again]), /UNIQUE/);
    })();
    const ids = db.prepare('SELECT message_id AS id FROM factline_outbox ORDER BY id').all() as { id: string }[];
    assert.deepEqual(
      ids.map((row) => row.id),
      [first?.id],
      'the fresh message is not left behind without the rest of its batch',
    );
    assert.equal(
      (db.prepare('SELECT count(*) AS n FROM orders').get() as { n: number }).n,
      1,
      "the caller's own row committed",
    );
  } finally {
    cleanup();
  }
});

test('a transaction begun by hand and left open across an await: the relay reads nothing of it; its rollback publishes nothing', async () => {
  const { db, outbox, cleanup } = setup();
  const transport = getInMemoryTransport();
  const { received, consumer } = await collect(transport);
  const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 10 });
  try {
    await relay.ready();
    db.exec('BEGIN');
    outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'rolled-back' } }]);
    // The application awaits something inside its transaction: the relay's rounds (every 10 ms) run meanwhile,
    // on the same connection, where the uncommitted row is visible.
    await new Promise((resolve) => setTimeout(resolve, 100));
    db.exec('ROLLBACK');
    db.transaction(() => outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'committed' } }]))();
    await waitUntil(() => received.length >= 1, 'the committed message published');
    assert.deepEqual(
      received.map((m) => (m.data as { id: string }).id),
      ['committed'],
    );
    assert.equal(outbox.pending(), 0);
  } finally {
    await relay.stop();
    await consumer.stop();
    cleanup();
  }
});

test('a transaction left open on the outbox connection keeps a held topic held: a read that did not read finds no topic gone', async () => {
  const { db, cleanup } = setup();
  // The outbox's connection, counting the relay's looks at its transaction: one per read.
  let looks = 0;
  const counted = new Proxy(db, {
    get(target, name) {
      if (name === 'inTransaction') looks++;
      return Reflect.get(target, name);
    },
  });
  const outbox = getSqliteOutbox({ database: counted });
  db.transaction(() => outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: {}, key: 'k' }]))();
  const transport = getInMemoryTransport();
  // No subscription to 'orders': the relay holds it, tried again every 10 ms.
  const relay = startSqliteOutboxRelay(outbox, transport, {
    lease: false,
    pollMs: 10,
    holdBackoffMaxMs: 10,
    onError: () => {},
  });
  try {
    await waitUntil(() => relay.stats().held.includes('orders'), 'the topic held');
    db.exec('BEGIN');
    const from = looks;
    const held: (readonly string[])[] = [];
    // Rounds past the hold's backoff (10 ms), each a read that does not read while the transaction is open.
    await waitUntil(() => {
      held.push(relay.stats().held);
      return looks >= from + 6;
    }, 'six rounds while the transaction is open');
    db.exec('ROLLBACK');
    assert.deepEqual(
      held.filter((topics) => !topics.includes('orders')),
      [],
      'the topic stays held while its row waits',
    );
    assert.equal(outbox.pending(), 1);
    await transport.declareSubscription('orders', 'billing');
    await waitUntil(() => outbox.pending() === 0, 'the row published once subscribed');
    assert.deepEqual(relay.stats().held, []);
  } finally {
    await relay.stop();
    await transport.close();
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
