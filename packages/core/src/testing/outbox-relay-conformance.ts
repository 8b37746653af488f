import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isNoSubscriptionError } from '../errors/index.ts';
import type { Message } from '../messaging/message.ts';
import type { OutboxRelayOptions } from '../messaging/outbox-relay.ts';
import type { OutboxRelayStats } from '../messaging/relay-status.ts';
import type { Subscription, Transport } from '../messaging/transport.ts';
import { settlesWithin, waitUntil } from './wait-until.ts';

/** An outbox on a backend of its own (a file, a schema), for one case. */
export interface OutboxRelayEnvironment {
  /** Writes one message to the outbox in a committed transaction of its own; returns it as it will be published. */
  enqueue(topic: string, type: string): Promise<Message>;
  /** Rows waiting to be published. */
  pending(): Promise<number>;
  /** A transport to publish to (its subscriptions declared by the case). */
  transport: Transport;
  /** Starts the adapter's relay on this outbox, publishing to `transport`. */
  startRelay(options: OutboxRelayOptions): Promise<{ stop(): Promise<void>; stats(): OutboxRelayStats }>;
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
 * in order once a subscription is declared; `stop()` resolves while holding.
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

    it('publishes the rows in outbox order and deletes them once published', async () => {
      const env = await environment();
      await env.transport.declareSubscription('orders', 'billing');
      const written: Message[] = [];
      for (let i = 0; i < 12; i++) written.push(await env.enqueue('orders', `T${i}`));
      const relay = await env.startRelay({ pollMs: 10, batchSize: 5 });
      try {
        const got = await receiveAll(env.transport.subscribe('orders', 'billing'), 12);
        assert.deepEqual(
          got.map((m) => m.id),
          written.map((m) => m.id),
        );
        await waitUntil(async () => (await env.pending()) === 0, 'the published rows deleted');
        assert.equal(relay.stats().published, 12);
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
