import type { Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { type Names, partitionOf } from '../topology.ts';
import type { Outgoing } from './publish.ts';

const encoder = new TextEncoder();

/**
 * The publishes of `messages` to `topic`: each to its key's partition
 * subject, with `Nats-Msg-Id` = topic and message id when `deduplicate`; a
 * message due later (`deliverAt`), and the key's later messages of the same
 * call, carry when they are due.
 *
 * @example
 * encodeMessages(topologyNames('shop'), 'orders', [message], { partitions: 4, deduplicate: true }); // [{ subject: 'shop.orders.<p>.all', data, messageId: 'orders <id>' }]
 */
export function encodeMessages(
  names: Names,
  topic: string,
  messages: readonly Message[],
  settings: { partitions: number; deduplicate: boolean },
): Outgoing[] {
  const at = Date.now();
  /** The topic's subject per partition, made on first use in this call (escaping the topic is not free). */
  const subjects: string[] = [];
  /** Per key, when its latest delayed message is due: the key's later messages wait for it (same publish). */
  let heldKeys: Map<string, number> | undefined;
  const out: Outgoing[] = new Array(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i] as Message;
    const partition = partitionOf(message.key, settings.partitions);
    let subject = subjects[partition];
    if (subject === undefined) {
      subject = names.subject(topic, partition);
      subjects[partition] = subject;
    }
    const item: Outgoing = { subject, data: encoder.encode(messageToJson(message)), key: message.key };
    // Per topic: one stream holds every topic, and the same message (an event relayed to two topics) is
    // legitimately published once to each; a repeat to the same topic is what the server drops.
    if (settings.deduplicate) item.messageId = `${topic} ${message.id}`;
    const due = Math.max(message.deliverAt?.getTime() ?? 0, heldKeys?.get(message.key) ?? 0);
    if (due > at) {
      heldKeys ??= new Map();
      heldKeys.set(message.key, due);
      item.dueAt = due;
    }
    out[i] = item;
  }
  return out;
}
