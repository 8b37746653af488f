import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMessage, type Delivery } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import amqp from 'amqplib';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const application = testApplication('delay_order');
const names = topologyNames(application);
const created: RabbitTransport[] = [];

after(async () => {
  if (!skip) await removeTopology(created);
});

const signal = new AbortController().signal;

describe('rabbitmq: a key behind its delayed message', { skip }, () => {
  // A key's messages published together with one deliverAt travel the delay tiers side by side, but each
  // reaches the group queue again on its own: on a busy machine a later one can arrive when less than the
  // shortest tier (64 ms) is left, and be held in the process, while an earlier one arrived with more left
  // and went through a tier again. The reader parks the key while that one is away. Here the first message
  // reaches the reader a little more than 1024 ms before its due time, so it goes through the 1024 ms tier
  // and comes back at about its due time; the second is put in the group queue 45 ms before that time, so
  // it is held in the process while the first is away.
  it('a later message of the key that arrives with less than a tier left waits for the earlier one, still away in a tier', async () => {
    const transport = await getRabbitTransport({ url: amqpUrl, application, partitions: 1 });
    created.push(transport);
    const connection = await amqp.connect(amqpUrl);
    try {
      await transport.declareSubscription('orders', 'billing');
      const subscription = transport.subscribe('orders', 'billing');
      const deliverAt = new Date(Date.now() + 1040);
      const [first, second] = [1, 2].map((i) =>
        createMessage({ type: 'OrderPlaced', key: 'order-1', data: { i }, deliverAt }),
      ) as [ReturnType<typeof createMessage>, ReturnType<typeof createMessage>];
      const channel = await connection.createConfirmChannel();
      const send = async (message: typeof first) => {
        channel.sendToQueue(names.groupQueue('orders', 'billing', 0), Buffer.from(messageToJson(message)), {
          messageId: message.id,
          persistent: true,
        });
        await channel.waitForConfirms();
      };
      await send(first);
      await sleep(Math.max(0, deliverAt.getTime() - 45 - Date.now()));
      await send(second);

      const got: Delivery[] = [];
      await waitUntil(
        async () => {
          got.push(...(await subscription.receive(2 - got.length, 200, signal)));
          return got.length >= 2;
        },
        'both messages of the key handed out',
        10_000,
      );
      assert.ok(Date.now() >= deliverAt.getTime(), 'not before their deliverAt');
      assert.deepEqual(
        got.map((d) => d.message.id),
        [first.id, second.id],
        'the key in publish order: the message back from its tier first',
      );
      await Promise.all(got.map((d) => d.ack()));
      await subscription.close();
    } finally {
      await connection.close();
      await transport.close();
    }
  });
});
