import type { Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { type Names, partitionOf } from '../topology.ts';
import type { Outgoing } from './publish.ts';

/**
 * The AMQP messages that redeliver `messages` to one group: through the
 * default exchange straight into the partition queue each key maps to among
 * the group's `partitions`, so no other group sees them.
 *
 * @example
 * await publisher.publish(redeliveryOf(topologyNames('shop'), 'orders', 'billing', 4, [message]));
 */
export function redeliveryOf(
  names: Names,
  topic: string,
  group: string,
  partitions: number,
  messages: readonly Message[],
): Outgoing[] {
  return messages.map((message) => ({
    exchange: '',
    routingKey: names.groupQueue(topic, group, partitionOf(message.key, partitions)),
    content: Buffer.from(messageToJson(message)),
    headers: {},
    messageId: message.id,
  }));
}
