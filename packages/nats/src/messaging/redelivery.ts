import type { Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { type Names, partitionOf } from '../topology.ts';
import type { Outgoing } from './publish.ts';

const encoder = new TextEncoder();

/**
 * The publishes of a dead-letter redrive: each message to `group`'s own
 * subject on its key's partition, with a `Nats-Msg-Id` of its own, so the
 * duplicate window never drops a redrive (not even of a message just
 * published, or redriven a moment ago).
 *
 * @example
 * encodeRedelivery(topologyNames('shop'), 'orders', 'billing', 4, [message]); // [{ subject: 'shop.orders.<p>.to.billing', data, messageId: '<id> redelivered …' }]
 */
export function encodeRedelivery(
  names: Names,
  topic: string,
  group: string,
  partitions: number,
  messages: readonly Message[],
): Outgoing[] {
  return messages.map((message) => ({
    subject: names.groupSubject(topic, group, partitionOf(message.key, partitions)),
    data: encoder.encode(messageToJson(message)),
    messageId: `${message.id} redelivered ${Date.now()} ${Math.random().toString(36).slice(2)}`,
    key: message.key,
  }));
}
