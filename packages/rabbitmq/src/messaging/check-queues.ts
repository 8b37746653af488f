import type { Channel, ChannelModel } from 'amqplib';
import { closeWithin } from '../connection.ts';

/** The broker's answer to a passive declare of a queue that does not exist (it closes the channel too). */
const isMissingQueue = (error: unknown) => (error as { code?: unknown })?.code === 404;

/**
 * Passive declares (`checkQueue`) of `queues` in order, on a channel of its
 * own closed at the end: `seen` gets each queue's ready messages, or
 * `undefined` for a missing one, and returns whether to go on.
 * The broker closes the channel that asked for a missing queue, so the next
 * queue gets a new one; no other channel of the connection sees it. Creates
 * nothing. Any other failure rejects.
 *
 * @example
 * await checkQueues(connection, ['shop.orders.billing.0'], (_, ready) => ready !== undefined);
 */
export async function checkQueues(
  connection: ChannelModel,
  queues: Iterable<string>,
  seen: (queue: string, ready: number | undefined) => boolean,
): Promise<void> {
  let channel: Channel | undefined;
  try {
    for (const queue of queues) {
      if (!channel) {
        channel = await connection.createChannel();
        // The 404 of a missing queue comes as an error event too: the rejected check below tells it.
        channel.on('error', () => undefined);
      }
      let ready: number | undefined;
      try {
        ready = (await channel.checkQueue(queue)).messageCount;
      } catch (error) {
        if (!isMissingQueue(error)) throw error;
        channel = undefined;
      }
      if (!seen(queue, ready)) return;
    }
  } finally {
    // Not waited for: the answers are in, and a close-ok that never comes must not hold them (a count is kept).
    if (channel) void closeWithin(channel);
  }
}
