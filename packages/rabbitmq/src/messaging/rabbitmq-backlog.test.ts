import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { amqpUrl, rabbitUnavailable, readyIn, removeTopology, testApplication } from '../fixtures/server.ts';
import { delayTierFor, partitionOf, topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const application = testApplication('backlog');
const names = topologyNames(application);
const created: RabbitTransport[] = [];

after(async () => {
  if (!skip) await removeTopology(created);
});

const open = async () => {
  const transport = await getRabbitTransport({ url: amqpUrl, application, partitions: 2 });
  created.push(transport);
  return transport;
};
const backlogOf = async (transport: RabbitTransport, group: string) =>
  (await transport.backlog?.('orders', group)) ?? assert.fail('the RabbitMQ transport tells its backlog');
const signal = new AbortController().signal;

describe('rabbitmq: backlog', { skip }, () => {
  it('tells nothing for a group not declared, creates nothing, and leaves the transport working', async () => {
    const transport = await open();
    try {
      await transport.declareSubscription('orders', 'billing');
      assert.deepEqual(await backlogOf(transport, 'nobody'), { messages: 0, oldestAt: undefined });
      assert.equal(await readyIn(names.groupQueue('orders', 'nobody', 0)), 'missing');
      assert.equal(await readyIn(names.groupQueue('orders', 'nobody', 1)), 'missing');
      // The missing queues' 404s closed the backlog's own channel only: publishing goes on.
      await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-0', data: {} })]);
      assert.equal((await backlogOf(transport, 'billing')).messages, 1);
    } finally {
      await transport.close();
    }
  });

  it("counts a group's ready messages over its queues, its own deliveries in flight and its releases in a delay tier", async () => {
    const transport = await open();
    try {
      await transport.declareSubscription('orders', 'shipping');
      assert.deepEqual(await backlogOf(transport, 'shipping'), { messages: 0, oldestAt: undefined });
      const keys = Array.from({ length: 6 }, (_, i) => `order-${i}`);
      assert.deepEqual(new Set(keys.map((key) => partitionOf(key, 2))), new Set([0, 1]), 'both queues hold some');
      await transport.publish(
        'orders',
        keys.map((key) => createMessage({ type: 'OrderPlaced', key, data: {} })),
      );
      assert.deepEqual(await backlogOf(transport, 'shipping'), { messages: 6, oldestAt: undefined, ageUnknown: true });

      const subscription = transport.subscribe('orders', 'shipping');
      const got: Delivery[] = [];
      await waitUntil(async () => {
        got.push(...(await subscription.receive(6 - got.length, 200, signal)));
        return got.length === 6;
      }, 'all six handed out');
      assert.equal(await readyIn(names.groupQueue('orders', 'shipping', 0)), 0, 'none ready: all in flight');
      assert.equal((await backlogOf(transport, 'shipping')).messages, 6, 'in delivery still counts');
      await Promise.all(got.slice(0, 2).map((d) => d.ack()));
      await waitUntil(async () => (await backlogOf(transport, 'shipping')).messages === 4, 'two acknowledged');

      const tier = names.tier(delayTierFor(60_000) as number, 'retry');
      await (got[2] as Delivery).release(60_000);
      await waitUntil(async () => (await readyIn(tier)) === 1, 'the release in its delay tier');
      // Confirms come back in order on the transport's channel: once this one has, so has the release's copy
      // (and its original was acknowledged).
      await transport.publish('elsewhere', [createMessage({ type: 'Noise', key: 'n', data: {} })]);
      assert.equal((await backlogOf(transport, 'shipping')).messages, 4, 'the release counts while away');
      await subscription.close();
    } finally {
      await transport.close();
    }
  });
});
