import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { amqpUrl, rabbitUnavailable } from '../fixtures/server.ts';
import { createPublisher, type Outgoing } from './publish.ts';

const skip = await rabbitUnavailable();

/** A confirm channel whose `publish` counts the times the socket buffer was full (`false`: wait for `drain`). */
async function countingChannel(connection: ChannelModel) {
  const channel: ConfirmChannel = await connection.createConfirmChannel();
  channel.on('error', () => undefined);
  const full = { count: 0 };
  const publish = channel.publish.bind(channel);
  channel.publish = (...args: Parameters<ConfirmChannel['publish']>) => {
    const room = publish(...args);
    if (!room) full.count += 1;
    return room;
  };
  return { channel, full };
}

/** `n` messages of 4 KB into `queue` through the default exchange: far more than a socket buffer holds. */
const batch = (queue: string, n: number, exchange = ''): Outgoing[] =>
  Array.from({ length: n }, (_, i) => ({
    exchange,
    routingKey: queue,
    content: Buffer.alloc(4096, 120),
    headers: {},
    messageId: `m-${i}`,
  }));

describe('rabbitmq publisher under backpressure', { skip }, () => {
  let connection: ChannelModel;
  before(async () => {
    connection = await amqp.connect(amqpUrl);
    connection.on('error', () => undefined);
  });
  after(async () => {
    await connection?.close().catch(() => undefined);
  });

  it('keeps its listeners on the channel bounded over many batches that wait for drain', async () => {
    const { channel, full } = await countingChannel(connection);
    // Exclusive, and bounded (drop-head): every message is confirmed, none kept.
    const { queue } = await channel.assertQueue('', { exclusive: true, arguments: { 'x-max-length': 10 } });
    const listeners = () => ['close', 'error', 'drain'].map((event) => channel.listenerCount(event));
    const publisher = createPublisher(channel, 30_000);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    try {
      await publisher.publish(batch(queue, 10));
      const first = listeners();
      for (let round = 0; round < 15; round++) await publisher.publish(batch(queue, 1500));
      // More waits than Node's default of 10 listeners per event before it warns.
      assert.ok(full.count > 10, `the batches waited for drain more than 10 times (${full.count})`);
      assert.deepEqual(listeners(), first, 'as many close, error and drain listeners as after the first batch');
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      await channel.close().catch(() => undefined);
    }
  });

  it('a channel error while a batch waits for drain rejects it with a retryable TransportError', async () => {
    const { channel, full } = await countingChannel(connection);
    const publisher = createPublisher(channel, 30_000);
    // No such exchange: the broker closes the channel (404) while the batch still waits for room to send.
    await assert.rejects(publisher.publish(batch('q', 3000, `factline-missing-${process.pid}`)), {
      name: 'TransportError',
      retryable: true,
    });
    assert.ok(full.count > 0, 'the batch waited for drain');
  });
});
