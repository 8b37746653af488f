import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  createConsumer,
  defineEventRelay,
  getInMemoryInbox,
  getInMemoryTransport,
  type Message,
  runInMessageContext,
  TransportError,
  type TransportPublishOptions,
} from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';

test('the store is the outbox: committed events reach a consumer in stream order, once, even when a publish repeats', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-relay-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const inner = getInMemoryTransport();
  // The first publish reaches the transport, then fails: as if the relay died before saving its progress.
  let failOnce = true;
  const transport = {
    ...inner,
    async publish(topic: string, messages: readonly Message[], options?: TransportPublishOptions) {
      await inner.publish(topic, messages, options);
      if (failOnce) {
        failOnce = false;
        throw new Error('connection lost after publishing');
      }
    },
  };
  const received: Message[] = [];
  const consumer = createConsumer({
    name: 'notifications',
    topic: 'orders',
    transport,
    inbox: getInMemoryInbox(),
    pollMs: 20,
    handler: (message) => void received.push(message),
  });
  await consumer.start();

  const correlated = { id: 'checkout-1', metadata: { correlationId: 'corr-1' } };
  await runInMessageContext(correlated, async () => {
    for (let i = 0; i < 5; i++) {
      await store.append(`order-${i % 2}`, [
        { type: 'OrderPlaced', data: { i } },
        { type: 'Internal', data: {} },
      ]);
    }
  });
  // An append that fails is never published.
  await assert.rejects(store.append('order-0', [{ type: 'OrderPlaced', data: { i: 99 } }], { expectedVersion: 0 }));

  const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
  const runner = await startSqliteProjections(store, [relay], { initialBackoffMs: 1 });
  await waitUntil(() => consumer.stats().handled === 5, 'five events delivered');
  await runner.waitFor('orders-relay', await store.headPosition());

  assert.ok(consumer.stats().duplicates >= 1, 'the repeated publish should have been dropped by the inbox');
  assert.equal(received.length, 5);
  const byKey = (key: string) => received.filter((m) => m.key === key).map((m) => (m.data as { i: number }).i);
  assert.deepEqual(byKey('order-0'), [0, 2, 4]);
  assert.deepEqual(byKey('order-1'), [1, 3]);
  for (const message of received) {
    assert.equal(message.type, 'OrderPlaced');
    assert.equal(message.metadata.correlationId, 'corr-1');
    assert.equal(message.metadata.causationId, 'checkout-1');
  }
  const stored = (await store.readStream('order-0')).events.filter((e) => e.type === 'OrderPlaced').map((e) => e.id);
  assert.deepEqual(
    received.filter((m) => m.key === 'order-0').map((m) => m.id),
    stored,
  );
  await runner.stop();
  await consumer.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a relay whose transport is unreachable for longer than its attempts waits for it, then publishes; a refusal still fails it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-relay-outage-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const inner = getInMemoryTransport();
  await inner.declareSubscription('orders', 'notifications');
  // A broker restarting: eight publishes in a row fail as a transport reports an outage (retryable).
  let outage = 8;
  const errors: unknown[] = [];
  const transport = {
    ...inner,
    async publish(topic: string, messages: readonly Message[], options?: TransportPublishOptions) {
      if (outage > 0) {
        outage -= 1;
        throw new TransportError('broker unreachable (connection refused)');
      }
      await inner.publish(topic, messages, options);
    },
  };
  try {
    await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
    const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
    const runner = await startSqliteProjections(store, [relay], {
      initialBackoffMs: 1,
      maxBackoffMs: 20,
      maxAttempts: 3,
      onError: (error) => errors.push(error),
    });
    try {
      await runner.waitFor('orders-relay', await store.headPosition(), { timeoutMs: 10_000 });
      assert.equal(outage, 0);
      assert.equal(errors.length, 8, 'each failed try reported');
      assert.equal(runner.status('orders-relay').state, 'running');
      const [delivery] = await inner
        .subscribe('orders', 'notifications')
        .receive(1, 1000, new AbortController().signal);
      assert.equal(delivery?.message.type, 'OrderPlaced');
    } finally {
      await runner.stop();
    }
    // Refused for good (the broker cannot take the message): each try counts, and the relay fails after its attempts.
    const refusing = {
      ...inner,
      publish: async () => Promise.reject(new TransportError('refused by the broker', { retryable: false })),
    };
    const refused: unknown[] = [];
    const failing = await startSqliteProjections(
      store,
      [defineEventRelay({ name: 'refused-relay', transport: refusing, topic: 'orders', handles: ['OrderPlaced'] })],
      { initialBackoffMs: 1, maxBackoffMs: 20, maxAttempts: 3, onError: (error) => refused.push(error) },
    );
    try {
      await waitUntil(() => failing.status('refused-relay').state === 'failed', 'the relay failed');
      assert.equal(refused.length, 3);
    } finally {
      await failing.stop();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
