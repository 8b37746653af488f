import type { TransportBacklog } from '@factline/core';
import { messageFromJson } from '@factline/core/adapter';
import type { ConsumerInfo, JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';
import { isNotFound, type Names } from '../topology.ts';

const utf8 = new TextDecoder();

/** The first message of the stream on `filter` at or after `seq`, or null (`STREAM.MSG.GET`, NATS 2.9+). */
const nextOn = (jsm: JetStreamManager, stream: string, filter: string, seq: number): Promise<StoredMsg | null> =>
  // The server takes `next_by_subj` on STREAM.MSG.GET since 2.9; the client's type lists it for direct gets only.
  jsm.streams.getMessage(stream, { seq, next_by_subj: filter } as unknown as MsgRequest);

/** The message's `createdAt` from its body; the stream's timestamp where the body is not a Factline message. */
function createdAtOf(stored: StoredMsg): number {
  try {
    const at = messageFromJson(utf8.decode(stored.data)).createdAt.getTime();
    if (Number.isFinite(at)) return at;
  } catch {
    // Not a message this transport wrote (a redrive of something else): its time in the stream stands in.
  }
  return stored.time.getTime();
}

/**
 * A server time (RFC 3339 with up to 9 fraction digits, trailing zeros
 * trimmed) as ns since the epoch: stream and consumer times of one server
 * compare at the precision it wrote them, not at a Date's ms.
 */
export function serverNanos(text: string): bigint | undefined {
  const parts = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  const ms = Date.parse(parts ? `${parts[1]}${parts[3]}` : text);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((parts?.[2] ?? '').padEnd(9, '0'));
}

/**
 * The oldest message a consumer has not acknowledged: the first on its
 * filter after its ack floor (after what it delivered, when nothing is in
 * delivery). Until its first ack the floor is the stream's start, where
 * messages stored before the consumer was made (kept for other groups) are
 * not its own: the first one stored since it was made is found by halving
 * the delivered range (a few more requests, only until its first ack).
 */
async function oldestWaiting(
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  info: ConsumerInfo,
): Promise<StoredMsg | null> {
  const inDelivery = info.num_ack_pending > 0;
  const first = await nextOn(
    jsm,
    stream,
    filter,
    (inDelivery ? info.ack_floor.stream_seq : info.delivered.stream_seq) + 1,
  );
  if (!first || !inDelivery || info.ack_floor.consumer_seq > 0) return first;
  // Stored before the consumer was made (by the server's clock, to the ns): another group's, not its own.
  const created = serverNanos(info.created);
  const storedAt = serverNanos(first.timestamp);
  if (created === undefined || storedAt === undefined || storedAt >= created) return first;
  let found: StoredMsg | null = null;
  let low = first.seq + 1;
  let high = info.delivered.stream_seq;
  while (low <= high) {
    const middle = Math.floor((low + high) / 2);
    const probe = await nextOn(jsm, stream, filter, middle);
    if (!probe || probe.seq > high) high = middle - 1;
    else if ((serverNanos(probe.timestamp) ?? created) >= created) {
      found = probe;
      high = middle - 1;
    } else low = probe.seq + 1;
  }
  return found ?? nextOn(jsm, stream, filter, info.delivered.stream_seq + 1);
}

/** One partition's consumer: unread + in delivery, and the oldest of them; nothing when it does not exist. */
async function partitionBacklog(
  jsm: JetStreamManager,
  names: Names,
  topic: string,
  group: string,
  partition: number,
): Promise<TransportBacklog> {
  let info: ConsumerInfo;
  try {
    info = await jsm.consumers.info(names.stream, names.consumer(topic, group, partition));
  } catch (error) {
    // Not declared (or the stream is gone): nothing waits for it, and nothing is made by asking.
    if (isNotFound(error)) return { messages: 0, oldestAt: undefined };
    throw error;
  }
  const messages = info.num_pending + info.num_ack_pending;
  if (messages === 0) return { messages, oldestAt: undefined };
  const oldest = await oldestWaiting(jsm, names.stream, names.filter(topic, partition), info);
  return { messages, oldestAt: oldest ? createdAtOf(oldest) : undefined };
}

/**
 * What waits for `group` on `topic`, summed over its partition consumers:
 * `num_pending` (not delivered yet) + `num_ack_pending` (delivered, naked
 * with a delay or held, not acknowledged); the oldest one's `createdAt`, read
 * from its body. One consumer info per partition, and one message read per
 * partition with something waiting; creates nothing.
 *
 * @example
 * await readBacklog(jsm, topologyNames('shop'), 'orders', 'billing', 4); // { messages: 3, oldestAt: 1733400000000 }
 */
export async function readBacklog(
  jsm: JetStreamManager,
  names: Names,
  topic: string,
  group: string,
  partitions: number,
): Promise<TransportBacklog> {
  const parts = await Promise.all(
    Array.from({ length: partitions }, (_, p) => partitionBacklog(jsm, names, topic, group, p)),
  );
  let messages = 0;
  let oldestAt: number | undefined;
  for (const part of parts) {
    messages += part.messages;
    if (part.oldestAt !== undefined) oldestAt = Math.min(oldestAt ?? part.oldestAt, part.oldestAt);
  }
  return { messages, oldestAt };
}
