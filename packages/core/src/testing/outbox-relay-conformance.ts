import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isNoSubscriptionError, isTransportError, TransportError } from '../errors/index.ts';
import type { Message } from '../messaging/message.ts';
import type { OutboxRelayOptions } from '../messaging/outbox-relay.ts';
import type { OutboxRelayStats } from '../messaging/relay-status.ts';
import type { Subscription, Transport } from '../messaging/transport.ts';
import { settlesWithin, waitUntil } from './wait-until.ts';

/** An outbox on a backend of its own (a file, a schema), for one case. */
export interface OutboxRelayEnvironment {
  /** Writes one message to the outbox in a committed transaction of its own; returns it as it will be published. */
  enqueue(topic: string, type: string, key?: string): Promise<Message>;
  /** Rows waiting to be published. */
  pending(): Promise<number>;
  /** A transport to publish to (its subscriptions declared by the case). */
  transport: Transport;
  /** Starts the adapter's relay on this outbox, publishing to `publishTo` (default: `transport`). */
  startRelay(
    options: OutboxRelayOptions,
    publishTo?: Transport,
  ): Promise<{ stop(): Promise<void>; stats(): OutboxRelayStats }>;
  /** Closes what the environment opened. */
  close(): Promise<void>;
}

export interface OutboxRelayConformanceOptions {
  /** Shown in the test names. */
  name: string;
  createEnvironment(): Promise<OutboxRelayEnvironment>;
  skip?: string | false;
}

async function receiveAll(subscription: Subscription, count: number): Promise<Message[]> {
  const out: Message[] = [];
  await waitUntil(async () => {
    for (const delivery of await subscription.receive(10, 50, new AbortController().signal)) {
      out.push(delivery.message);
      await delivery.ack();
    }
    return out.length >= count;
  }, `${count} messages`);
  return out;
}

/**
 * Registers the outbox relay contract with `node:test`: rows published in
 * outbox order and deleted once published; a topic nobody subscribed to yet
 * is held (reported, never dropped, holding back no other topic) and goes out
 * in order once a subscription is declared; a topic whose publish the
 * transport refuses as not retryable is held the same way until the refusal
 * ends; `stop()` resolves while holding.
 * Every adapter's relay runs it against itself.
 */
export function testOutboxRelayConformance(options: OutboxRelayConformanceOptions): void {
  describe(`Outbox relay conformance: ${options.name}`, { skip: options.skip || false }, () => {
    const open: OutboxRelayEnvironment[] = [];
    const environment = async () => {
      const created = await options.createEnvironment();
      open.push(created);
      return created;
    };
    after(async () => {
      for (const created of open.splice(0)) await created.close();
    });

    it('publishes in outbox order across topics, keys and batches, and deletes the rows once published', async () => {
      const env = await environment();
      await env.transport.declareSubscription('orders', 'billing');
      await env.transport.declareSubscription('audit', 'ledger');
      const orders: Message[] = [];
      const audit: Message[] = [];
      // Everything is in the outbox before the relay starts: batches of 7 cut through the runs.
      for (let i = 0; i < 15; i++) {
        orders.push(await env.enqueue('orders', `Step${i}a`, `k-${i % 3}`));
        orders.push(await env.enqueue('orders', `Step${i}b`, `k-${i % 3}`));
        if (i % 4 === 0) audit.push(await env.enqueue('audit', `Audited${i}`, 'audit'));
      }
      const relay = await env.startRelay({ pollMs: 10, batchSize: 7 });
      try {
        const gotOrders = await receiveAll(env.transport.subscribe('orders', 'billing'), orders.length);
        const gotAudit = await receiveAll(env.transport.subscribe('audit', 'ledger'), audit.length);
        assert.deepEqual(
          gotOrders.map((m) => m.id),
          orders.map((m) => m.id),
          'each topic in outbox order',
        );
        assert.deepEqual(
          gotAudit.map((m) => m.id),
          audit.map((m) => m.id),
        );
        await waitUntil(async () => (await env.pending()) === 0, 'the published rows deleted');
        assert.equal(relay.stats().published, orders.length + audit.length);
      } finally {
        await settlesWithin(relay.stop(), 5000, 'stop');
      }
    });

    it('a publish that fails after reaching the transport is published again; the rows stay until a publish resolves', async () => {
      const env = await environment();
      await env.transport.declareSubscription('orders', 'billing');
      let failOnce = true;
      const inner = env.transport;
      const flaky: Transport = Object.create(inner, {
        publish: {
          value: async (...args: Parameters<Transport['publish']>) => {
            await inner.publish(...args);
            if (failOnce) {
              failOnce = false;
              throw new Error('connection lost after publishing');
            }
          },
        },
      });
      const written = [await env.enqueue('orders', 'A', 'o-1'), await env.enqueue('orders', 'B', 'o-1')];
      const errors: unknown[] = [];
      const relay = await env.startRelay({ pollMs: 10, onError: (error) => errors.push(error) }, flaky);
      try {
        await waitUntil(async () => (await env.pending()) === 0, 'the rows deleted after the republish');
        // Published twice: a transport that keeps message ids unique per group delivers each once, any
        // other delivers the repeats too (consumers' inboxes drop them by id); in order either way.
        const got = await receiveAll(inner.subscribe('orders', 'billing'), 2);
        const firsts = got.map((m) => m.id).filter((id, i, all) => all.indexOf(id) === i);
        assert.deepEqual(
          firsts,
          written.map((m) => m.id),
        );
        assert.equal(relay.stats().failures, 1);
        assert.equal(errors.length, 1);
        assert.equal(relay.stats().published, 2);
      } finally {
        await settlesWithin(relay.stop(), 5000, 'stop');
      }
    });

    it('holds a topic with no subscription, reports it, publishes other topics, then the held rows in order', async () => {
      const env = await environment();
      await env.transport.declareSubscription('payments', 'ledger');
      const held = [await env.enqueue('orders', 'A1'), await env.enqueue('orders', 'A2')];
      const payment = await env.enqueue('payments', 'P1');
      held.push(await env.enqueue('orders', 'A3'));
      const errors: unknown[] = [];
      const relay = await env.startRelay({ pollMs: 10, holdBackoffMaxMs: 40, onError: (error) => errors.push(error) });
      try {
        const payments = await receiveAll(env.transport.subscribe('payments', 'ledger'), 1);
        assert.deepEqual(
          payments.map((m) => m.id),
          [payment.id],
          'a held topic holds back no other topic',
        );
        await waitUntil(() => errors.length >= 3, 'three tries of the held topic, each reported');
        assert.ok(errors.every((e) => isNoSubscriptionError(e)));
        const stats = relay.stats();
        assert.deepEqual(stats.held, ['orders']);
        assert.equal(stats.failures, 0, 'holding is not failing');
        assert.equal(await env.pending(), 3, 'the held rows stay in the outbox');

        await env.transport.declareSubscription('orders', 'billing');
        const orders = await receiveAll(env.transport.subscribe('orders', 'billing'), 3);
        assert.deepEqual(
          orders.map((m) => m.id),
          held.map((m) => m.id),
          'published in outbox order',
        );
        await waitUntil(async () => relay.stats().held.length === 0 && (await env.pending()) === 0, 'the hold lifted');
      } finally {
        await settlesWithin(relay.stop(), 5000, 'stop');
      }
    });

    it('holds a topic whose publish the transport refuses (not retryable), reports each refusal, publishes other topics, then the held rows in order', async () => {
      const env = await environment();
      await env.transport.declareSubscription('orders', 'billing');
      await env.transport.declareSubscription('payments', 'ledger');
      let refusing = true;
      const inner = env.transport;
      // A transport that cannot carry the topic's messages (too large, a queue declared otherwise) until fixed.
      const refusingOrders: Transport = Object.create(inner, {
        publish: {
          value: async (...args: Parameters<Transport['publish']>) => {
            if (refusing && args[0] === 'orders') {
              throw new TransportError("topic 'orders': refused by the broker", { retryable: false });
            }
            return inner.publish(...args);
          },
        },
      });
      const held = [await env.enqueue('orders', 'A1'), await env.enqueue('orders', 'A2')];
      const payment = await env.enqueue('payments', 'P1');
      held.push(await env.enqueue('orders', 'A3'));
      const errors: unknown[] = [];
      const relay = await env.startRelay(
        { pollMs: 10, holdBackoffMaxMs: 40, onError: (error) => errors.push(error) },
        refusingOrders,
      );
      try {
        const payments = await receiveAll(inner.subscribe('payments', 'ledger'), 1);
        assert.deepEqual(
          payments.map((m) => m.id),
          [payment.id],
          'a refused topic holds back no other topic',
        );
        await waitUntil(() => errors.length >= 3, 'three tries of the refused topic, each reported');
        assert.ok(errors.every((e) => isTransportError(e) && !e.retryable));
        const stats = relay.stats();
        assert.deepEqual(stats.refused, ['orders']);
        assert.deepEqual(stats.held, [], 'refused, not waiting for a subscription');
        assert.ok(stats.failures >= 3, 'each refusal is a failure');
        assert.equal(stats.published, 1);
        assert.equal(await env.pending(), 3, 'the refused rows stay in the outbox');

        refusing = false;
        const orders = await receiveAll(inner.subscribe('orders', 'billing'), 3);
        assert.deepEqual(
          orders.map((m) => m.id),
          held.map((m) => m.id),
          'published in outbox order',
        );
        await waitUntil(
          async () => relay.stats().refused.length === 0 && (await env.pending()) === 0,
          'the refusal lifted',
        );
      } finally {
        await settlesWithin(relay.stop(), 5000, 'stop');
      }
    });

    it('stop() resolves while the relay holds; the row stays for the next relay', async () => {
      const env = await environment();
      await env.enqueue('orders', 'A');
      const relay = await env.startRelay({ pollMs: 10_000 });
      try {
        await waitUntil(() => relay.stats().held.length === 1, 'holding');
      } finally {
        await settlesWithin(relay.stop(), 5000, 'stop');
      }
      assert.equal(relay.stats().running, false);
      assert.equal(await env.pending(), 1);
    });
  });
}
