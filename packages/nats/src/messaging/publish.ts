import { TransportError } from '@factline/core';
import type { JetStreamClient, JetStreamPublishOptions, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';

/** Header carrying when a message is due (ms since the epoch), for a key's messages held behind a delayed one. */
export const DUE_HEADER = 'Factline-Due';

/** One message to publish. */
export interface Outgoing {
  subject: string;
  data: Uint8Array;
  /** `Nats-Msg-Id`: the server stores a repeat within the duplicate window once. Absent: no de-duplication. */
  messageId?: string;
  /** When it is due, if later than now. */
  dueAt?: number;
}

/**
 * Publishes every item at once (pipelined: all in flight together, in order
 * on the connection) and resolves when each has its PubAck from the stream.
 * A publish the server did not acknowledge (timeout, no stream, connection
 * lost) rejects the batch with a retryable `TransportError`: publishing it
 * again is safe, the server drops the repeat (same `Nats-Msg-Id`). Resolves
 * the PubAcks (`duplicate: true` for a repeat).
 *
 * @example
 * await publishAll(js, [{ subject: 'shop.orders.0.all', data, messageId: message.id }], 5000);
 */
export async function publishAll(
  js: JetStreamClient,
  items: readonly Outgoing[],
  timeoutMs: number,
): Promise<PubAck[]> {
  const pending = items.map((item) => {
    const options: Partial<JetStreamPublishOptions> = { timeout: timeoutMs };
    if (item.messageId !== undefined) options.msgID = item.messageId;
    if (item.dueAt !== undefined) {
      const h = natsHeaders();
      h.set(DUE_HEADER, String(item.dueAt));
      options.headers = h;
    }
    return js.publish(item.subject, item.data, options);
  });
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    const reason = (failed as PromiseRejectedResult).reason;
    throw new TransportError(
      `NATS JetStream did not acknowledge the publish to '${items[0]?.subject}' (${String(reason)})`,
      {
        cause: reason,
      },
    );
  }
  return settled.map((s) => (s as PromiseFulfilledResult<PubAck>).value);
}
