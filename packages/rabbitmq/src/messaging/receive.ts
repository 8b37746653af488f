import type { Message } from '@factline/core';
import { type BufferedEntry, messageFromJson } from '@factline/core/adapter';
import type { ConsumeMessage } from 'amqplib';

/** Headers the transport carries on a message it re-publishes (a delay hop). */
export const COUNT_HEADER = 'x-factline-count';
export const DUE_HEADER = 'x-factline-due';

/** One message a group reader holds (unacknowledged at the broker) until it is acked or moved to a delay tier. */
export interface Entry extends BufferedEntry {
  raw: ConsumeMessage;
  /** The channel generation it came on; a later generation means the broker took it back. */
  generation: number;
}

/** Parsed from a delivery: the envelope, the hand-outs before its delay hops, and when it is due. */
export function readIncoming(raw: ConsumeMessage): { message: Message; count: number; dueAt: number } {
  const message = messageFromJson(raw.content.toString('utf8'));
  const headers = raw.properties.headers ?? {};
  const number = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
  // The broker's x-delivery-count also counts messages prefetched but never handed out when a connection
  // dropped: the count here is what this transport saw (hand-outs here, carried across delay hops).
  const count = number(headers[COUNT_HEADER]);
  const dueAt = Math.max(number(headers[DUE_HEADER]), message.deliverAt?.getTime() ?? 0);
  return { message, count, dueAt };
}
