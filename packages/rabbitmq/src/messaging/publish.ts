import { once } from 'node:events';
import { TransportError } from '@factline/core';
import type { ConfirmChannel, Options } from 'amqplib';

/** One AMQP message to publish. */
export interface Outgoing {
  exchange: string;
  routingKey: string;
  content: Buffer;
  headers: Record<string, unknown>;
  messageId: string;
}

/** What became of one message: confirmed, or returned as unroutable (`mandatory`). */
export type Outcome = 'confirmed' | 'returned';

const TOKEN = 'x-factline-publish';

/**
 * A publisher on one confirm channel: every message persistent and
 * `mandatory`, all of a batch in flight at once (pipelined), each resolved by
 * its own broker confirm. A nack or a channel closed before the confirm
 * rejects the batch with a retryable `TransportError`; a message the broker
 * could not route comes back as `'returned'` (the broker sends the return
 * before the confirm).
 */
export function createPublisher(channel: ConfirmChannel) {
  const returned = new Set<number>();
  let next = 0;
  channel.on('return', (message) => {
    const token = message.properties.headers?.[TOKEN];
    if (typeof token === 'number') returned.add(token);
  });

  const one = (item: Outgoing): Promise<Outcome> => {
    const token = next++;
    const options: Options.Publish = {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      messageId: item.messageId,
      headers: { ...item.headers, [TOKEN]: token },
    };
    return new Promise<Outcome>((resolve, reject) => {
      const settle = (error: unknown) => {
        const wasReturned = returned.delete(token);
        if (error) {
          reject(
            new TransportError(`RabbitMQ did not confirm the publish to '${item.exchange}' (${String(error)})`, {
              cause: error,
            }),
          );
        } else resolve(wasReturned ? 'returned' : 'confirmed');
      };
      try {
        const room = channel.publish(item.exchange, item.routingKey, item.content, options, settle);
        if (!room) drained = once(channel, 'drain').then(() => undefined);
      } catch (error) {
        reject(new TransportError(`publishing to RabbitMQ failed: ${String(error)}`, { cause: error }));
      }
    });
  };

  let drained: Promise<void> | undefined;

  return {
    /** Publishes every item (waiting for `drain` when the socket buffer is full) and waits for every confirm. */
    async publish(items: readonly Outgoing[]): Promise<Outcome[]> {
      const pending: Promise<Outcome>[] = [];
      for (const item of items) {
        if (drained) {
          const waiting = drained;
          drained = undefined;
          await Promise.race([waiting, once(channel, 'close')]);
        }
        pending.push(one(item));
      }
      return Promise.all(pending);
    },
  };
}

export type Publisher = ReturnType<typeof createPublisher>;
