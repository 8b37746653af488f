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
import { settlesWithin, testOutboxRelayConformance, waitUntil } from '@factline/core/testing';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore, openSqliteDatabase } from '../store/sqlite-event-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-hold-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

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

testOutboxRelayConformance({
  name: 'sqlite',
  async createEnvironment() {
    const db = openSqliteDatabase(join(dir, `outbox-${++files}.db`), {});
    const outbox = getSqliteOutbox({ database: db });
    const transport = getInMemoryTransport();
    return {
      transport,
      enqueue: async (topic, type, key = 'k') =>
        db.transaction(() => outbox.enqueue(db, topic, [{ type, data: {}, key }]))()[0] as Message,
      pending: async () => outbox.pending(),
      startRelay: async (options, publishTo = transport) =>
        startSqliteOutboxRelay(outbox, publishTo, { ...options, leaseCheckMs: 50 }),
      close: async () => {
        db.close();
      },
    };
  },
});

describe('sqlite event relays hold what nobody subscribed to yet', () => {
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
      await settlesWithin(runner.stop(), 2000, 'stop');
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
      await settlesWithin(runner.stop(), 2000, 'stop');
      await store.close();
    }
    assert.equal(tries, 1);
  });
});
