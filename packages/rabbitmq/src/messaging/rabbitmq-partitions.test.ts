import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage, getInMemoryDeadLetterStore, isFactlineError } from '@factline/core';
import amqp from 'amqplib';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// Every process of an application must give the same `partitions`: a key's partition is its hash modulo the
// count, so two counts send one key to two queues (two consumers, no order). The first declaration of a topic
// records its count (an empty queue whose x-max-length is the count); a transport given another is refused on
// declaring, subscribing and publishing, and declares nothing.
const skip = await rabbitUnavailable();
const application = testApplication('partitions');
const names = topologyNames(application);
const created: RabbitTransport[] = [];

const open = async (partitions: number) => {
  const transport = await getRabbitTransport({ url: amqpUrl, application, partitions });
  created.push(transport);
  return transport;
};

const otherCount = (topic: string, recorded: number, given: number) => (error: Error & { retryable?: boolean }) => {
  assert.ok(isFactlineError(error), String(error));
  assert.equal(error.retryable, false, error.message);
  assert.ok(
    error.message.startsWith(
      `topic '${topic}' has ${recorded} partitions in the RabbitMQ application '${application}' (the x-max-length of the queue ${application}.${topic}.partitions), and this transport was given partitions: ${given}: every process of an application must use the same count. To change it: stop every process`,
    ),
    error.message,
  );
  return true;
};

/** The queue's message count, or undefined when it does not exist. */
async function queueDepth(queue: string): Promise<number | undefined> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return (await channel.checkQueue(queue)).messageCount;
  } catch {
    return undefined;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

describe('rabbitmq: one partition count per topic', { skip }, () => {
  after(async () => {
    await Promise.allSettled(created.map((transport) => transport.close()));
    await removeTopology(created);
  });

  it('records the count at the first declaration; another count is refused for declaring, consuming and publishing, and declares and sends nothing', async () => {
    const four = await open(4);
    const eight = await open(8);
    const alsoFour = await open(4);
    await four.declareSubscription('orders', 'billing');
    assert.equal(await queueDepth(names.partitionCount('orders')), 0, 'the record: an empty queue');

    await assert.rejects(eight.declareSubscription('orders', 'shipping'), otherCount('orders', 4, 8));
    await assert.rejects(
      eight.declareSubscription('orders', 'shipping'),
      otherCount('orders', 4, 8),
      'refused again, not cached',
    );
    await assert.rejects(
      eight.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]),
      otherCount('orders', 4, 8),
    );
    const consumer = createConsumer({
      name: 'shipping',
      topic: 'orders',
      transport: eight,
      deadLetters: getInMemoryDeadLetterStore(),
      handler: () => undefined,
    });
    await assert.rejects(consumer.start(), otherCount('orders', 4, 8));
    await consumer.stop();
    for (let p = 0; p < 8; p++) {
      assert.equal(await queueDepth(names.groupQueue('orders', 'shipping', p)), undefined, `no shipping queue ${p}`);
    }
    for (let p = 0; p < 4; p++) {
      assert.equal(await queueDepth(names.groupQueue('orders', 'billing', p)), 0, `nothing sent to billing ${p}`);
    }
    assert.equal(await queueDepth(names.groupQueue('orders', 'billing', 4)), undefined, 'no fifth billing queue');
    assert.ok(eight.connected(), 'the refusal closed only its own channel');

    // The same count is welcome, and the count is per topic.
    await alsoFour.declareSubscription('orders', 'shipping');
    await alsoFour.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]);
    await eight.declareSubscription('payments', 'billing');
    await eight.publish('payments', [createMessage({ type: 'B', key: 'k', data: {} })]);
    await assert.rejects(four.declareSubscription('payments', 'billing'), otherCount('payments', 8, 4));
  });

  it('two processes declaring a new topic with two counts at once: one count is recorded, the other transport refused', async () => {
    const three = await open(3);
    const five = await open(5);
    const outcomes = await Promise.allSettled([
      three.declareSubscription('refunds', 'a'),
      five.declareSubscription('refunds', 'b'),
    ]);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(refused.length, 1, JSON.stringify(outcomes.map((o) => o.status)));
    const [won, given] = outcomes[0]?.status === 'fulfilled' ? [3, 5] : [5, 3];
    assert.ok(otherCount('refunds', won, given)((refused[0] as PromiseRejectedResult).reason));
  });
});
