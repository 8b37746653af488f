import { TransportError } from '@factline/core';
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import {
  createInbox,
  errors,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from '@nats-io/transport-node';

/** Header carrying when a message is due (ms since the epoch), for a key's messages held behind a delayed one. */
export const DUE_HEADER = 'Factline-Due';

/** The header JetStream de-duplicates publishes by, within the stream's duplicate window. */
const MSG_ID_HEADER = 'Nats-Msg-Id';

/** One message to publish. */
export interface Outgoing {
  subject: string;
  data: Uint8Array;
  /** `Nats-Msg-Id`: the server stores a repeat within the duplicate window once. Absent: no de-duplication. */
  messageId?: string;
  /** When it is due, if later than now. */
  dueAt?: number;
}

/** The messages of one `publishAll` call, waiting for their PubAcks. */
interface Batch {
  acks: PubAck[];
  /** PubAcks still to come. */
  left: number;
  subject: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve(acks: PubAck[]): void;
  reject(error: unknown): void;
}

/** What the stream answers a publish with: a PubAck, or an API error. */
interface Answer {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code: number; err_code: number; description: string };
}

const decoder = new TextDecoder();

/**
 * Publishes to JetStream over one connection: each message is a core
 * publish whose reply subject is under one inbox subscription of the
 * publisher, and the stream's answer there resolves it. Equivalent to
 * `js.publish` (the same headers: `Nats-Msg-Id`, no expectations) without a
 * request object, a timer and two error objects per message: one deadline
 * covers a whole `publishAll` call.
 *
 * @example
 * const publisher = createPublisher(nc, 5000);
 * await publisher.publishAll([{ subject: 'shop.orders.0.all', data, messageId: `orders ${message.id}` }]);
 */
export function createPublisher(nc: NatsConnection, timeoutMs: number) {
  const inbox = createInbox();
  const prefix = `${inbox}.`;
  /** Calls waiting for PubAcks, by call number (the first token after the inbox in their reply subjects). */
  const waiting = new Map<number, Batch>();
  let nextBatch = 1;
  let closed = false;

  const settle = (id: number, batch: Batch, error?: unknown) => {
    waiting.delete(id);
    clearTimeout(batch.timer);
    if (error === undefined) batch.resolve(batch.acks);
    else
      batch.reject(
        new TransportError(`NATS JetStream did not acknowledge the publish to '${batch.subject}' (${String(error)})`, {
          cause: error,
        }),
      );
  };

  const answer = (msg: Msg) => {
    const subject = msg.subject;
    const dot = subject.indexOf('.', prefix.length);
    const id = Number(subject.slice(prefix.length, dot));
    const batch = waiting.get(id);
    // An answer after its call's deadline, or after another message of the call failed: nobody waits for it.
    if (!batch) return;
    const index = Number(subject.slice(dot + 1));
    if (batch.acks[index] !== undefined) return;
    const data = msg.data;
    if (data.length === 0) {
      // A status instead of an answer: 503 = no stream takes the subject.
      const code = msg.headers?.code ?? 0;
      settle(
        id,
        batch,
        code === 503 ? new errors.NoRespondersError(batch.subject) : new Error(`status ${code} instead of a PubAck`),
      );
      return;
    }
    let parsed: Answer;
    try {
      parsed = JSON.parse(decoder.decode(data)) as Answer;
    } catch (error) {
      settle(id, batch, error);
      return;
    }
    if (parsed.error) {
      settle(id, batch, new JetStreamApiError(parsed.error));
      return;
    }
    if (typeof parsed.stream !== 'string' || parsed.stream === '' || typeof parsed.seq !== 'number') {
      settle(id, batch, new Error('invalid ack response'));
      return;
    }
    batch.acks[index] = { stream: parsed.stream, seq: parsed.seq, duplicate: parsed.duplicate === true } as PubAck;
    batch.left -= 1;
    if (batch.left === 0) settle(id, batch);
  };

  const failAll = (error: unknown) => {
    for (const [id, batch] of waiting) settle(id, batch, error);
  };

  const subscription: Subscription = nc.subscribe(`${inbox}.>`, {
    callback: (error, msg) => {
      if (error) failAll(error);
      else answer(msg);
    },
  });
  // The subscription ends with the connection (or refused by the server): no answer can come any more.
  void subscription.closed.then(
    (error) => failAll(error ?? new errors.RequestError('connection closed')),
    (error: unknown) => failAll(error),
  );

  return {
    /**
     * Publishes every item at once (pipelined: all in flight together, in
     * order on the connection) and resolves when each has its PubAck from
     * the stream. A publish the server did not acknowledge within the
     * deadline (no stream, an API error, connection lost) rejects the call
     * with a retryable `TransportError`: publishing it again is safe, the
     * server drops the repeat (same `Nats-Msg-Id`). Resolves the PubAcks
     * (`duplicate: true` for a repeat).
     */
    publishAll(items: readonly Outgoing[]): Promise<PubAck[]> {
      return new Promise<PubAck[]>((resolve, reject) => {
        const id = nextBatch++;
        const batch: Batch = {
          acks: new Array(items.length),
          left: items.length,
          subject: items[0]?.subject ?? '',
          timer: undefined,
          resolve,
          reject,
        };
        if (items.length === 0) return resolve([]);
        if (closed) return reject(new TransportError('the NATS publisher is closed', { retryable: false }));
        waiting.set(id, batch);
        batch.timer = setTimeout(() => {
          if (waiting.get(id) === batch) settle(id, batch, new errors.TimeoutError());
        }, timeoutMs);
        const replyPrefix = `${prefix}${id}.`;
        try {
          for (let i = 0; i < items.length; i++) {
            const item = items[i] as Outgoing;
            let h: ReturnType<typeof natsHeaders> | undefined;
            if (item.messageId !== undefined) {
              h = natsHeaders();
              h.set(MSG_ID_HEADER, item.messageId);
            }
            if (item.dueAt !== undefined) {
              h ??= natsHeaders();
              h.set(DUE_HEADER, String(item.dueAt));
            }
            nc.publish(
              item.subject,
              item.data,
              h ? { reply: `${replyPrefix}${i}`, headers: h } : { reply: `${replyPrefix}${i}` },
            );
          }
        } catch (error) {
          // Closed or draining connection: what went out before is answered to nobody; the call fails whole.
          if (waiting.get(id) === batch) settle(id, batch, error);
        }
      });
    },

    /** Fails the calls still waiting and stops listening for answers. */
    close() {
      if (closed) return;
      closed = true;
      failAll(new errors.RequestError('connection closed'));
      if (!nc.isClosed()) subscription.unsubscribe();
    },
  };
}

export type Publisher = ReturnType<typeof createPublisher>;
