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
  /**
   * The message's key: an item is sent only once the item of its key before
   * it in the call is stored, so a refused message has no later one of its
   * key stored past it. Absent: no item waits for it.
   */
  key?: string;
}

/** The messages of one `publishAll` call, waiting for their PubAcks. */
interface Batch {
  acks: PubAck[];
  /** PubAcks still to come. */
  left: number;
  subject: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Item `index` was stored: sends the items held back behind it. */
  stored(index: number): void;
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

/** A call's items to one subject, in call order; `next` is the first not sent. */
interface Lane {
  items: number[];
  next: number;
}

/**
 * How a call's items go out when a key comes twice in it: per item, the
 * item of its key before it (-1: none); per subject a lane, sent in order up
 * to an item whose key's item before it is not stored yet. `undefined` when
 * no key comes twice: every item goes at once.
 */
function scheduleOf(items: readonly Outgoing[]): { before: Int32Array; lanes: Lane[] } | undefined {
  let before: Int32Array | undefined;
  const last = new Map<string, number>();
  for (let i = 0; i < items.length; i++) {
    const key = items[i]?.key;
    if (key === undefined) continue;
    const earlier = last.get(key);
    if (earlier !== undefined) {
      before ??= new Int32Array(items.length).fill(-1);
      before[i] = earlier;
    }
    last.set(key, i);
  }
  if (before === undefined) return undefined;
  const lanes = new Map<string, Lane>();
  for (let i = 0; i < items.length; i++) {
    const subject = (items[i] as Outgoing).subject;
    const lane = lanes.get(subject) ?? { items: [], next: 0 };
    lanes.set(subject, lane);
    lane.items.push(i);
  }
  return { before, lanes: [...lanes.values()] };
}

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
    // Stored (or a repeat of one stored): the next message of its key may go now.
    else batch.stored(index);
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
     * Publishes the items pipelined (in flight together, each subject's in
     * call order on the connection), except that an item with a `key` goes only once the
     * item of its key before it was stored (its PubAck came), and the later
     * items of its subject wait with it (a subject keeps call order across
     * keys): a message the stream refuses (over its `max_msg_size`, a limit
     * with `discard: new`) then has no later message of its key stored past
     * it, which a consumer would get first and a retry would not put back in
     * order. A call whose keys do not repeat is all in flight at once; a run
     * of one key goes one PubAck at a time. Resolves when each has its
     * PubAck from the stream. A publish the server did not acknowledge within
     * the deadline (no stream, an API error, connection lost) rejects the
     * call with a retryable `TransportError`, and its items not sent yet
     * are not sent: publishing the call again is safe, the server
     * drops the repeats (same `Nats-Msg-Id`). Resolves the PubAcks
     * (`duplicate: true` for a repeat).
     */
    publishAll(items: readonly Outgoing[]): Promise<PubAck[]> {
      return new Promise<PubAck[]>((resolve, reject) => {
        const id = nextBatch++;
        const replyPrefix = `${prefix}${id}.`;
        const schedule = scheduleOf(items);
        /** Lanes held back, by the item they wait for. */
        const held = new Map<number, Lane>();
        /** Sends the lane's items up to one whose key's item before it is not stored yet. */
        const sendLane = (lane: Lane) => {
          while (lane.next < lane.items.length) {
            const index = lane.items[lane.next] as number;
            const earlier = schedule?.before[index] ?? -1;
            if (earlier >= 0 && batch.acks[earlier] === undefined) {
              held.set(earlier, lane);
              return;
            }
            send(index);
            lane.next++;
          }
        };
        const sending = (work: () => void) => {
          try {
            work();
          } catch (error) {
            // Closed or draining connection: what went out before is answered to nobody; the call fails whole.
            if (waiting.get(id) === batch) settle(id, batch, error);
          }
        };
        const batch: Batch = {
          acks: new Array(items.length),
          left: items.length,
          subject: items[0]?.subject ?? '',
          timer: undefined,
          stored(index) {
            const lane = held.get(index);
            if (lane === undefined) return;
            held.delete(index);
            sending(() => sendLane(lane));
          },
          resolve,
          reject,
        };
        const send = (index: number) => {
          const item = items[index] as Outgoing;
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
            h ? { reply: `${replyPrefix}${index}`, headers: h } : { reply: `${replyPrefix}${index}` },
          );
        };
        if (items.length === 0) return resolve([]);
        if (closed) return reject(new TransportError('the NATS publisher is closed', { retryable: false }));
        waiting.set(id, batch);
        batch.timer = setTimeout(() => {
          if (waiting.get(id) === batch) settle(id, batch, new errors.TimeoutError());
        }, timeoutMs);
        sending(() => {
          if (schedule === undefined) for (let i = 0; i < items.length; i++) send(i);
          else for (const lane of schedule.lanes) sendLane(lane);
        });
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
