import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  defineEventRelay,
  getInMemoryTransport,
  isNoSubscriptionError,
  type Message,
  type Subscription,
} from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore, openSqliteDatabase } from '../store/sqlite-event-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-hold-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Fails if `promise` has not settled within `ms`: a stop that hangs fails the test instead of the run. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function receiveAll(sub: Subscription, count: number): Promise<Message[]> {
  const out: Message[] = [];
  await waitUntil(async () => {
    for (const delivery of await sub.receive(10, 50, new AbortController().signal)) {
      out.push(delivery.message);
      await delivery.ack();
    }
    return out.length >= count;
  }, `${count} messages`);
  return out;
}

describe('sqlite relays hold what nobody subscribed to yet', () => {
  it('the outbox relay holds a topic with no subscription, reports it, publishes other topics, then the held rows in order', async () => {
    const db = openSqliteDatabase(join(dir, `outbox-${++files}.db`), {});
    const outbox = getSqliteOutbox({ database: db });
    const transport = getInMemoryTransport();
    await transport.declareSubscription('payments', 'ledger');
    const enqueue = (topic: string, type: string) =>
      db.transaction(() => outbox.enqueue(db, topic, [{ type, data: {}, key: 'k' }]))()[0] as Message;
    const held = [enqueue('orders', 'A1'), enqueue('orders', 'A2')];
    const payment = enqueue('payments', 'P1');
    held.push(enqueue('orders', 'A3'));

    const errors: unknown[] = [];
    const relay = startSqliteOutboxRelay(outbox, transport, {
      pollMs: 10,
      holdBackoffMaxMs: 40,
      lease: false,
      onError: (error) => errors.push(error),
    });
    try {
      const payments = await receiveAll(transport.subscribe('payments', 'ledger'), 1);
      assert.deepEqual(
        payments.map((m) => m.id),
        [payment.id],
        'a held topic holds back no other topic',
      );
      await waitUntil(() => errors.length >= 3, 'three tries of the held topic, each reported');
      assert.ok(
        errors.every((e) => isNoSubscriptionError(e)),
        'every report is a NoSubscriptionError',
      );
      const stats = relay.stats();
      assert.deepEqual(stats.held, ['orders']);
      assert.ok(isNoSubscriptionError(stats.lastError));
      assert.equal(stats.failures, 0, 'holding is not failing');
      assert.equal(stats.published, 1);
      assert.equal(outbox.pending(), 3, 'the held rows stay in the outbox');

      // Backoff, not a spin: tries over 300 ms stay few (10, 20, 40, 40, … ms apart).
      const before = errors.length;
      const until = Date.now() + 300;
      await waitUntil(() => Date.now() >= until, '300 ms of holding', 1000, 20);
      assert.ok(errors.length - before <= 15, `${errors.length - before} tries in 300 ms`);

      await transport.declareSubscription('orders', 'billing');
      const orders = await receiveAll(transport.subscribe('orders', 'billing'), 3);
      assert.deepEqual(
        orders.map((m) => m.id),
        held.map((m) => m.id),
        'published in outbox order',
      );
      await waitUntil(() => relay.stats().held.length === 0 && outbox.pending() === 0, 'the hold lifted');
    } finally {
      await within(relay.stop(), 2000, 'stop');
      db.close();
    }
  });

  it('stop() resolves while the outbox relay holds', async () => {
    const db = openSqliteDatabase(join(dir, `outbox-${++files}.db`), {});
    const outbox = getSqliteOutbox({ database: db });
    db.transaction(() => outbox.enqueue(db, 'orders', [{ type: 'A', data: {} }]))();
    const relay = startSqliteOutboxRelay(outbox, getInMemoryTransport(), { pollMs: 10_000, lease: false });
    try {
      await waitUntil(() => relay.stats().held.length === 1, 'holding');
    } finally {
      await within(relay.stop(), 2000, 'stop');
    }
    assert.equal(relay.stats().running, false);
    assert.equal(outbox.pending(), 1, 'the row stays for the next relay');
    db.close();
  });

  it('the event relay waits for a subscription without failing: each try is reported, none counts as an attempt', async () => {
    const store = getSqliteEventStore({ path: join(dir, `events-${++files}.db`) });
    const { events } = await store.append('order-1', [
      { type: 'OrderPlaced', data: { i: 1 } },
      { type: 'OrderPlaced', data: { i: 2 } },
    ]);
    const transport = getInMemoryTransport();
    const errors: unknown[] = [];
    const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
    const runner = await startSqliteProjections(store, [relay], {
      maxAttempts: 2,
      initialBackoffMs: 5,
      maxBackoffMs: 20,
      lease: false,
      onError: (_name, error) => errors.push(error),
    });
    try {
      await waitUntil(() => errors.length >= 5, 'more tries than maxAttempts');
      assert.ok(errors.every((e) => isNoSubscriptionError(e)));
      const status = runner.status('orders-relay');
      assert.notEqual(status.state, 'failed', 'holding is not failing');
      assert.equal(status.checkpoint, 0, 'nothing published, nothing passed');
      assert.match(status.lastError?.message ?? '', /no subscription/);
      await transport.declareSubscription('orders', 'billing');
      const got = await receiveAll(transport.subscribe('orders', 'billing'), 2);
      assert.deepEqual(
        got.map((m) => m.id),
        events.map((e) => e.id),
      );
      await runner.waitFor('orders-relay', events[1]?.position as number);
    } finally {
      await within(runner.stop(), 2000, 'stop');
      await store.close();
    }
  });

  it('stop() interrupts the event relay’s wait for a subscription', async () => {
    const store = getSqliteEventStore({ path: join(dir, `events-${++files}.db`) });
    await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
    let tries = 0;
    const relay = defineEventRelay({
      name: 'orders-relay',
      transport: getInMemoryTransport(),
      topic: 'orders',
      handles: ['OrderPlaced'],
    });
    // A wait of 30 s and more: only an interrupted wait lets stop() resolve in time.
    const runner = await startSqliteProjections(store, [relay], {
      initialBackoffMs: 30_000,
      maxBackoffMs: 60_000,
      lease: false,
      onError: () => {
        tries += 1;
      },
    });
    try {
      await waitUntil(() => tries >= 1, 'holding');
    } finally {
      await within(runner.stop(), 2000, 'stop');
      await store.close();
    }
    assert.equal(tries, 1);
  });
});
