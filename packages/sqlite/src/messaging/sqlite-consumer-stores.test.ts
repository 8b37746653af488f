import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createConsumer, createMessage, defaultRetryPolicy, type Message } from '@factline/core';
import { testConsumerConformance, waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import {
  getSqliteDeadLetterStore,
  getSqliteInbox,
  getSqliteOutbox,
  getSqliteTransport,
  openSqliteDatabase,
  startSqliteOutboxRelay,
} from '../index.ts';
import { connectionOf } from '../transaction-handle.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-consumer-'));
const path = join(dir, 'consumers.db');
const setup = openSqliteDatabase(path);
setup.exec(`CREATE TABLE test_effects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, consumer TEXT NOT NULL, value TEXT NOT NULL)`);
setup.close();

for (const groupCommit of [true, false]) {
  testConsumerConformance<Database>({
    name: `sqlite transport, inbox and dead letters in one file (${groupCommit ? 'group commit' : 'a commit per message'})`,
    transactional: true,
    synchronousHandlers: true,
    async createEnvironment() {
      const transport = getSqliteTransport({ path, pollIntervalMs: 20 });
      const db = transport.database;
      const select = db.prepare<[string], { value: string }>(
        'SELECT value FROM test_effects WHERE consumer = ? ORDER BY seq',
      );
      return {
        transport,
        inbox: getSqliteInbox({ database: db, groupCommit }),
        deadLetters: getSqliteDeadLetterStore({ database: db }),
        writeEffect(tx, consumer, value) {
          if (connectionOf(tx) !== db) throw new Error('the handler should get a handle on the inbox connection');
          // Through the handle: a write after its transaction ended must be refused.
          tx.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)').run(consumer, value);
        },
        effects: async (consumer) => select.all(consumer).map((row) => row.value),
        // A second connection to the file, as another process has.
        peerTransport: async () => getSqliteTransport({ path, pollIntervalMs: 20 }),
        close: () => transport.close(),
      };
    },
  });
}

test('group commit: runs arriving together share one transaction; a failing run rolls back alone', async () => {
  const db = openSqliteDatabase(path);
  try {
    const inbox = getSqliteInbox({ database: db });
    const insert = db.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)');
    const ran: string[] = [];
    const settled: string[] = [];
    const run = (id: string, fail: boolean) =>
      (inbox.applyOnce as NonNullable<typeof inbox.applyOnce>)('group', id, new Date(), (tx) => {
        assert.equal(tx.inTransaction, true);
        insert.run('group', id);
        ran.push(id);
        if (fail) throw new TypeError(`${id} failed`);
      }).finally(() => settled.push(id));
    const results = await Promise.allSettled([run('a', false), run('b', true), run('c', false), run('a', false)]);
    assert.deepEqual(ran, ['a', 'b', 'c'], 'the second "a" is a duplicate within the group');
    assert.equal(settled.length, 4);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
      [true, 'b failed', true, false],
    );
    const rows = db.prepare("SELECT value FROM test_effects WHERE consumer = 'group' ORDER BY seq").all();
    assert.deepEqual(rows, [{ value: 'a' }, { value: 'c' }], "b's write rolled back with its savepoint");
    assert.equal(await inbox.has('group', 'b'), false, "b's mark rolled back too");
    await assert.rejects(
      (inbox.applyOnce as NonNullable<typeof inbox.applyOnce>)('group', 'd', new Date(), async () => undefined),
      { name: 'ValidationError' },
    );
    assert.equal(await inbox.has('group', 'd'), false, 'an async handler writes nothing');
  } finally {
    db.close();
  }
});

test("group commit: the runs a commit lets through (each lane's next message) commit in the same turn, each after the one before it", async () => {
  const db = openSqliteDatabase(path);
  try {
    // A budget no slow fsync can use up: what is tested is that the groups chain, not how fast.
    const inbox = getSqliteInbox({ database: db, chainBudgetMs: 60_000 });
    const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
    const committed = db.prepare<[string], { n: number }>(
      "SELECT count(*) AS n FROM test_effects WHERE consumer = 'lanes' AND value = ?",
    );
    const commitsBefore: number[] = [];
    // Two lanes of three messages each, as the key lanes run them: the next only once the one before resolved.
    const lane = async (name: string) => {
      for (let i = 0; i < 3; i++) {
        const id = `${name}${i}`;
        await applyOnce('lanes', id, new Date(), (tx) => {
          tx.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)').run('lanes', id);
        });
        // Resolved only after the commit: a second connection would see it; this one does outside a transaction.
        assert.equal(db.inTransaction, false);
        assert.equal(committed.get(id)?.n, 1, `${id} committed before its run resolved`);
      }
      commitsBefore.push(turns);
    };
    let turns = 0;
    let counting = true;
    // Counts turns of the event loop while the lanes run: an immediate queued from an immediate runs the next turn.
    const count = () => {
      if (!counting) return;
      turns += 1;
      setImmediate(count);
    };
    setImmediate(count);
    await Promise.all([lane('x'), lane('y')]);
    counting = false;
    // The first group waits for its turn (1); the two after it chain on in that same turn.
    assert.deepEqual(commitsBefore, [1, 1], 'all three groups committed within one turn, none waited for the next');
  } finally {
    db.close();
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('inbox and outbox together: a handler that fails after enqueuing publishes nothing; its retry publishes once, with the handled message as cause', async () => {
  const transport = getSqliteTransport({ path, pollIntervalMs: 20 });
  const db = transport.database;
  const outbox = getSqliteOutbox({ database: db });
  const relay = startSqliteOutboxRelay(outbox, transport, { pollMs: 20, lease: false });
  let runs = 0;
  const shipping = createConsumer<Database>({
    name: 'shipping',
    topic: 'payments',
    transport,
    inbox: getSqliteInbox({ database: db }),
    pollMs: 20,
    retryPolicy: defaultRetryPolicy({ immediate: 2, jitter: 0 }),
    handler: (message, tx) => {
      runs += 1;
      tx.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)').run('shipping', message.id);
      outbox.enqueue(tx, 'shipments', [{ type: 'ShipmentRequested', data: {}, key: message.key }]);
      if (runs === 1) throw new Error('failed after enqueuing');
    },
  });
  const received: Message[] = [];
  const downstream = createConsumer({
    name: 'warehouse',
    topic: 'shipments',
    transport,
    pollMs: 20,
    handler: (message) => void received.push(message),
  });
  try {
    await shipping.start();
    await downstream.start();
    const paid = createMessage({ type: 'OrderPaid', data: {}, key: 'order-9' });
    await transport.publish('payments', [paid]);
    await waitUntil(() => received.length === 1, 'the shipment request');
    assert.equal(runs, 2);
    assert.equal(received[0]?.metadata.causationId, paid.id, 'caused by the handled message');
    assert.equal(received[0]?.metadata.correlationId, paid.id);
    await waitUntil(async () => (await outbox.pending()) === 0, 'the relay deleting what it published');
    assert.equal(
      db.prepare("SELECT COUNT(*) AS n FROM test_effects WHERE consumer = 'shipping'").pluck().get(),
      1,
      'the failed run left no effect',
    );
    assert.equal(received.length, 1, 'the rolled-back enqueue was never published');
  } finally {
    await shipping.stop();
    await downstream.stop();
    await relay.stop();
    await transport.close();
  }
});
