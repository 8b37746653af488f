import { randomBytes } from 'node:crypto';
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

/**
 * The header naming each message a publisher sends: `<publisher>.<n>`, the publisher a random name and `n`
 * counting its messages. A return names the message it returns by it, and it stays unique to the AMQP message
 * through dead-lettering (dead-letter-id.ts keys a broker dead letter's record on it).
 */
export const PUBLISH_HEADER = 'x-factline-publish';

/**
 * A publisher on one confirm channel: every message persistent and
 * `mandatory`, all of a batch in flight at once (pipelined), each resolved by
 * its own broker confirm. A nack or a channel closed before the confirm
 * rejects the batch with a retryable `TransportError`, and so does a batch
 * not confirmed within `timeoutMs` (a broker blocking publishers under a
 * memory or disk alarm); a message the broker could not route comes back as
 * `'returned'` (the broker sends the return before the confirm).
 */
export function createPublisher(channel: ConfirmChannel, timeoutMs = 30_000) {
  const returned = new Set<number>();
  const prefix = `${randomBytes(9).toString('base64url')}.`;
  /** The next message's number (in its `PUBLISH_HEADER`): a return names the message it returns. */
  let next = 0;
  channel.on('return', (message) => {
    const token = message.properties.headers?.[PUBLISH_HEADER];
    if (typeof token === 'string' && token.startsWith(prefix)) returned.add(Number(token.slice(prefix.length)));
  });

  /** False from a send that found the socket buffer full until its `drain`. */
  let room = true;
  let channelClosed = false;
  const waiting = new Set<() => void>();
  const wake = () => {
    for (const resolve of waiting) resolve();
    waiting.clear();
  };
  // One listener each for the channel's life: one per wait for room piled up on a busy channel. A channel error
  // is followed by its close: the send after the wait throws, and the batch rejects with a TransportError.
  channel.on('drain', () => {
    room = true;
    wake();
  });
  channel.on('close', () => {
    channelClosed = true;
    wake();
  });
  /** Resolves once there is room to send, the channel closed or `ended` settled (the waiter then goes). */
  const roomOrEnd = async (ended: Promise<void>): Promise<void> => {
    let resolve: (() => void) | undefined;
    const roomNow = new Promise<void>((done) => {
      resolve = done;
      waiting.add(done);
    });
    try {
      await Promise.race([roomNow, ended]);
    } finally {
      waiting.delete(resolve as () => void);
    }
  };

  const exchangesOf = (items: readonly Outgoing[]) => [...new Set(items.map((item) => item.exchange))].join("', '");
  const failed = (items: readonly Outgoing[], error: unknown) =>
    new TransportError(`RabbitMQ did not confirm the publish to '${exchangesOf(items)}' (${String(error)})`, {
      cause: error,
    });

  return {
    /** Publishes every item (waiting for `drain` when the socket buffer is full) and waits for every confirm. */
    async publish(items: readonly Outgoing[]): Promise<Outcome[]> {
      if (items.length === 0) return [];
      const first = next;
      next += items.length;
      // One callback and one promise per batch, not per message: the outcome is known once every confirm is in.
      let remaining = items.length;
      let error: unknown;
      let settle: { resolve: (outcomes: Outcome[]) => void; reject: (error: unknown) => void } | undefined;
      const confirmed = new Promise<Outcome[]>((resolve, reject) => {
        settle = { resolve, reject };
      });
      // Handled when returned below; a nack while waiting for `drain`, or after a throw, is not unhandled.
      confirmed.catch(() => undefined);
      // The whole batch, room to send included, within the deadline; confirms arriving later change nothing.
      let over = false;
      const deadline = setTimeout(() => {
        over = true;
        forget();
        settle?.reject(
          new TransportError(
            `RabbitMQ did not confirm the publish to '${exchangesOf(items)}' within ${timeoutMs} ms (a broker under a memory or disk alarm blocks publishers until it clears: see its log)`,
          ),
        );
      }, timeoutMs);
      /** Resolves once the batch settled: confirmed, refused or past its deadline. */
      const ended = confirmed
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => clearTimeout(deadline));
      const forget = () => {
        const outcomes: Outcome[] = [];
        // The broker sends a message's return before its confirm: every return of the batch is in.
        for (let i = 0; i < items.length; i++) outcomes.push(returned.delete(first + i) ? 'returned' : 'confirmed');
        return outcomes;
      };
      const onConfirm = (nack: unknown) => {
        if (nack && error === undefined) error = nack;
        if (--remaining > 0) return;
        const outcomes = forget();
        if (error === undefined) settle?.resolve(outcomes);
        else settle?.reject(failed(items, error));
      };
      for (let i = 0; i < items.length; i++) {
        if (!room && !channelClosed) {
          await roomOrEnd(ended);
          // Past the deadline (the batch rejected): nothing more of it is sent.
          if (over) return confirmed;
        }
        const item = items[i] as Outgoing;
        const options: Options.Publish = {
          persistent: true,
          mandatory: true,
          contentType: 'application/json',
          messageId: item.messageId,
          headers: { ...item.headers, [PUBLISH_HEADER]: `${prefix}${first + i}` },
        };
        try {
          if (!channel.publish(item.exchange, item.routingKey, item.content, options, onConfirm)) room = false;
        } catch (thrown) {
          // The channel closed: what was sent gets its callback (an error) or none; the caller learns now.
          forget();
          throw new TransportError(`publishing to RabbitMQ failed: ${String(thrown)}`, { cause: thrown });
        }
      }
      return confirmed;
    },
  };
}

export type Publisher = ReturnType<typeof createPublisher>;
