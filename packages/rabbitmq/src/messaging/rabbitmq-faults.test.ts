import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage, type DeadLetterStore, getInMemoryDeadLetterStore } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import amqp from 'amqplib';
import { closeConnectionFromServer } from '../fixtures/close-connection.ts';
import {
  amqpUrl,
  rabbitUnavailable,
  receiveOne,
  removeTopology,
  sendConfirmed,
  testApplication,
} from '../fixtures/server.ts';
import type { RabbitTransportOptions } from '../options.ts';
import { topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const never = () => new AbortController().signal;
const created: RabbitTransport[] = [];

/** A transport of its own application whose `onError` calls are kept as `<stage>: <message>`. */
async function toldTransport(label: string, options: Partial<RabbitTransportOptions> = {}) {
  const errors: string[] = [];
  const application = testApplication(label);
  const transport = await getRabbitTransport({
    url: amqpUrl,
    application,
    partitions: 1,
    ...options,
    onError: (error, { stage }) => errors.push(`${stage}: ${(error as Error).message}`),
  });
  created.push(transport);
  return { transport, application, errors };
}

/** Changes the broker behind the transport's back, on a connection of its own. */
async function asAdmin(change: (channel: amqp.Channel) => Promise<unknown>): Promise<void> {
  const admin = await amqp.connect(amqpUrl);
  try {
    await change(await admin.createChannel());
  } finally {
    await admin.close();
  }
}

/** Runs the group's reader (it runs while its subscription receives) until `done`. */
async function drainUntil(transport: RabbitTransport, done: () => Promise<boolean>, what: string): Promise<void> {
  const reader = transport.subscribe('orders', 'billing');
  try {
    await waitUntil(
      async () => {
        await reader.receive(1, 100, never());
        return done();
      },
      what,
      15_000,
    );
  } finally {
    await reader.close();
  }
}

describe('rabbitmq transport faults on the shared broker (only this test’s connection and queues)', { skip }, () => {
  after(async () => {
    // Also after a failed case: a transport left open reconnects for ever and keeps this file running.
    await Promise.allSettled(created.map((transport) => transport.close()));
    await removeTopology(created);
  });

  it('its connection closed by the server: a publish meanwhile rejects (retryable), then it reconnects and the subscription resumes', async () => {
    const errors: string[] = [];
    const transport = await getRabbitTransport({
      url: amqpUrl,
      application: testApplication('faults'),
      partitions: 2,
      // Slow enough to publish into the outage, fast enough for the test.
      reconnectMinMs: 1500,
      reconnectMaxMs: 2000,
      onError: (_error, { stage }) => errors.push(stage),
    });
    created.push(transport);
    const subscription = transport.subscribe('orders', 'billing');
    await transport.declareSubscription('orders', 'billing');
    const before = createMessage({ type: 'Placed', key: 'k', data: { n: 1 } });
    await transport.publish('orders', [before]);
    await (await receiveOne(subscription)).ack();

    assert.ok(await closeConnectionFromServer(transport.connectionName), 'the test found its connection');
    await waitUntil(() => !transport.connected(), 'the transport to notice the lost connection', 10_000);
    await assert.rejects(transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]), {
      code: 'TRANSPORT',
      retryable: true,
    });
    assert.ok(errors.includes('connection'), 'onError was told of the lost connection');

    await waitUntil(() => transport.connected(), 'the transport to reconnect', 15_000);
    const afterwards = createMessage({ type: 'Placed', key: 'k', data: { n: 2 } });
    await transport.publish('orders', [afterwards]);
    const delivery = await receiveOne(subscription);
    assert.equal(delivery.message.id, afterwards.id, 'the subscription made before the outage receives again');
    await delivery.ack();
    await subscription.close();
    await transport.close();
  });

  it('a consumer cancelled by the server (its queue deleted) is reported, declared again and consumes again', async () => {
    const { transport, application, errors } = await toldTransport('cancel');
    const subscription = transport.subscribe('orders', 'billing');
    await transport.declareSubscription('orders', 'billing');
    const first = createMessage({ type: 'Placed', data: { n: 1 } });
    await transport.publish('orders', [first]);
    await (await receiveOne(subscription)).ack();

    await asAdmin((channel) => channel.deleteQueue(topologyNames(application).groupQueue('orders', 'billing', 0)));
    await waitUntil(() => errors.some((e) => /cancelled the consumer/.test(e)), 'the cancel to be reported', 10_000);
    // Declared again by the reader: a publish that requires a subscription finds one.
    const second = createMessage({ type: 'Placed', data: { n: 2 } });
    await waitUntil(
      async () =>
        transport.publish('orders', [second], { requireSubscription: true }).then(
          () => true,
          () => false,
        ),
      'the queue to be declared again',
      10_000,
    );
    const delivery = await receiveOne(subscription);
    assert.equal(delivery.message.id, second.id);
    await delivery.ack();
    await subscription.close();
    await transport.close();
  });

  it("a publish channel error (its exchange deleted on the server) is reported with the broker's reason; the link comes back", async () => {
    const { transport, application, errors } = await toldTransport('channel', {
      reconnectMinMs: 100,
      reconnectMaxMs: 500,
    });
    await transport.declareSubscription('orders', 'billing');
    await asAdmin((channel) => channel.deleteExchange(topologyNames(application).exchange));
    await transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]).catch(() => undefined);
    await waitUntil(
      () => errors.some((e) => /^connection: the publish channel .* failed: .*NOT_FOUND/.test(e)),
      'the channel error reported with its reason',
      10_000,
    );
    // Reconnected and declared again: a publish goes through.
    await waitUntil(
      async () =>
        transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]).then(
          () => true,
          () => false,
        ),
      'a publish to go through again',
      15_000,
    );
    await transport.close();
  });

  it('a message handed out past the delivery limit without an ack: the broker dead-letters it into the deadLetters store', async () => {
    const deadLetters = getInMemoryDeadLetterStore();
    const transport = await getRabbitTransport({
      url: amqpUrl,
      application: testApplication('limit'),
      partitions: 1,
      deliveryLimit: 1,
      deadLetters,
    });
    created.push(transport);
    await transport.declareSubscription('orders', 'billing');
    const poison = createMessage({ type: 'Placed', data: { poison: true } });
    await transport.publish('orders', [poison]);
    // As a process dying with it unacknowledged, twice: each closed subscription gives it back to the broker.
    for (let i = 0; i < 2; i++) {
      const subscription = transport.subscribe('orders', 'billing');
      assert.equal((await receiveOne(subscription)).message.id, poison.id);
      await subscription.close();
    }
    // The next reader of the group drains the dead-letter queue into the store.
    const reader = transport.subscribe('orders', 'billing');
    await waitUntil(async () => (await deadLetters.list()).length === 1, 'the broker dead letter in the store', 15_000);
    const [record] = await deadLetters.list();
    assert.equal(record?.message.id, poison.id);
    assert.equal(record?.consumer, 'billing');
    assert.match(record?.reason ?? '', /delivery limit exceeded/);
    assert.deepEqual(await reader.receive(1, 300, never()), [], 'it is not delivered again');
    await reader.close();
    await transport.close();
  });

  it('a group declared elsewhere with another deliveryLimit: a non-retryable refusal naming it, and the connection stays up', async () => {
    const first = await toldTransport('limits', { deliveryLimit: 20 });
    await first.transport.declareSubscription('orders', 'billing');
    // Another process of the application (another release) with another limit, on an application of the same name.
    const second = await toldTransport('limits-2', { deliveryLimit: 5 });
    const other = await getRabbitTransport({
      url: amqpUrl,
      application: first.application,
      partitions: 1,
      deliveryLimit: 5,
      onError: (error, { stage }) => second.errors.push(`${stage}: ${(error as Error).message}`),
    });
    created.push(other);
    await other.declareSubscription('audit', 'log');
    await assert.rejects(other.declareSubscription('orders', 'billing'), (error: Error & { retryable?: boolean }) => {
      assert.match(error.message, /x-delivery-limit/);
      assert.match(error.message, /deliveryLimit/);
      assert.equal(error.retryable, false);
      return true;
    });
    // Its publish channel and connection were not taken down with the refusal: publishing goes on.
    await other.publish('audit', [createMessage({ type: 'Logged', data: {} })]);
    assert.deepEqual(
      second.errors.filter((line) => line.startsWith('connection')),
      [],
      'no connection lost',
    );
    await other.close();
  });

  it('unreadable messages in the dead-letter queue, more than prefetch, are moved to the unreadable queue and told; the dead letters behind them are stored', async () => {
    const deadLetters = getInMemoryDeadLetterStore();
    const { transport, application, errors } = await toldTransport('dead-drain', { deadLetters, prefetch: 4 });
    await transport.declareSubscription('orders', 'billing');
    const names = topologyNames(application);
    const deadQueue = names.deadQueue('orders', 'billing');
    const readable = createMessage({ type: 'Placed', data: { n: 1 } });
    const unreadable = Array.from({ length: 10 }, (_, i) => `not json ${i}`);
    await sendConfirmed(deadQueue, [...unreadable, messageToJson(readable)]);
    await drainUntil(transport, async () => (await deadLetters.list()).length === 1, 'the readable one stored');
    await waitUntil(
      () => errors.filter((line) => line.startsWith('dead-letters: an unreadable message')).length === 10,
      'each unreadable one told',
    );
    assert.match(
      errors.find((line) => line.startsWith('dead-letters: an unreadable')) ?? '',
      new RegExp(`moved to ${names.unreadableQueue('orders', 'billing').replaceAll('.', '\\.')} for an operator`),
    );
    await transport.close();
    // Kept, in their order, for an operator; the dead-letter queue is empty.
    const kept: string[] = [];
    await asAdmin(async (channel) => {
      for (;;) {
        const left = await channel.get(names.unreadableQueue('orders', 'billing'), { noAck: true });
        if (!left) break;
        kept.push(left.content.toString());
      }
      assert.equal((await channel.checkQueue(deadQueue)).messageCount, 0, 'the dead-letter queue is empty');
    });
    assert.deepEqual(kept, unreadable);
  });

  it('a dead-letter store that fails is tried again after a backoff, not at once round and round', async () => {
    const inner = getInMemoryDeadLetterStore();
    const calls: number[] = [];
    const failing: DeadLetterStore = {
      ...inner,
      add: async (record) => {
        calls.push(performance.now());
        if (calls.length < 3) throw new Error('the database is down');
        return inner.add(record);
      },
    };
    const { transport, application, errors } = await toldTransport('dead-store', { deadLetters: failing });
    await transport.declareSubscription('orders', 'billing');
    const deadQueue = topologyNames(application).deadQueue('orders', 'billing');
    await sendConfirmed(deadQueue, [messageToJson(createMessage({ type: 'Placed', data: {} }))]);
    await drainUntil(transport, async () => (await inner.list()).length === 1, 'stored once the store is back');
    assert.equal(calls.length, 3);
    // 100 ms, then 200 ms between the tries (timers never fire early).
    assert.ok((calls[2] as number) - (calls[0] as number) >= 295, `tries at ${calls.map((t) => Math.round(t))}`);
    assert.equal(errors.filter((line) => line.startsWith('dead-letters')).length, 2);
  });

  it('a redelivery into a group queue deleted behind its back rejects, the dead letter stays dead, and the next redrive declares again', async () => {
    const { transport, application } = await toldTransport('redeliver_gone');
    const queue = topologyNames(application).groupQueue('orders', 'billing', 0);
    await transport.declareSubscription('orders', 'billing');
    const store = getInMemoryDeadLetterStore();
    const message = createMessage({ type: 'Placed', key: 'k', data: {} });
    const at = new Date();
    await store.add({
      id: 'dl-1',
      consumer: 'billing',
      topic: 'orders',
      message,
      error: { type: 'Error', message: 'failed' },
      reason: 'retries exhausted',
      attempts: 1,
      firstFailureAt: at,
      lastFailureAt: at,
      deadLetteredAt: at,
      redrives: [],
      state: 'dead',
    });
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      deadLetters: store,
      handler: () => {},
    });
    // An operator deletes the group's queue: this connection declared it and would not again.
    await asAdmin((channel) => channel.deleteQueue(queue));

    await assert.rejects(consumer.deadLetters.redrive('dl-1'), { code: 'TRANSPORT', message: /unroutable/ });
    assert.equal((await store.get('dl-1'))?.state, 'dead', 'a message that went nowhere is not marked redriven');

    assert.equal(await consumer.deadLetters.redrive('dl-1'), 1);
    assert.equal((await store.get('dl-1'))?.state, 'redriven');
    let ready = 0;
    await asAdmin(async (channel) => {
      ready = (await channel.checkQueue(queue)).messageCount;
    });
    assert.equal(ready, 1, 'the second redrive declared the queue again and the message is in it');
  });
});
