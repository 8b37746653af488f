import type { Channel, ChannelModel } from 'amqplib';

/** The broker's answer to a passive declare of a queue that does not exist (it closes the channel too). */
const isMissingQueue = (error: unknown) => (error as { code?: unknown })?.code === 404;

/**
 * The ready messages of `queues` summed, by passive declares (`checkQueue`)
 * on a channel of its own, closed at the end: a missing queue counts 0, and
 * since the broker closes the channel that asked for it, the next queue gets
 * a new one; the transport's publishing and consuming channels never see
 * it. Creates nothing. Ready only: AMQP tells no queue's unacknowledged
 * messages, nor their ages.
 *
 * @example
 * await readyMessages(connection, ['shop.orders.billing.0', 'shop.orders.billing.1']); // 3
 */
export async function readyMessages(connection: ChannelModel, queues: readonly string[]): Promise<number> {
  let channel: Channel | undefined;
  let ready = 0;
  try {
    for (const queue of queues) {
      if (!channel) {
        channel = await connection.createChannel();
        // The 404 of a missing queue comes as an error event too: the rejected check below tells it.
        channel.on('error', () => undefined);
      }
      try {
        ready += (await channel.checkQueue(queue)).messageCount;
      } catch (error) {
        if (!isMissingQueue(error)) throw error;
        channel = undefined;
      }
    }
  } finally {
    await channel?.close().catch(() => undefined);
  }
  return ready;
}
