import { createHash } from 'node:crypto';
import { uuidv7 } from '@factline/core';
import { PUBLISH_HEADER } from './publish.ts';

/** The parts of a delivery from a dead-letter queue its record's id is made of. */
export interface DeadDelivery {
  properties: { headers?: Record<string, unknown> | undefined };
}

/**
 * The id of the dead-letter record of one broker dead-lettering, the same
 * each time the dead-letter queue hands that delivery out (its ack lost,
 * the channel closed before it): a UUID (version 8) hashed from the
 * dead-letter queue, the message id, the AMQP message's `x-factline-publish`
 * header (unique to each message a Factline publisher sent: a publish, a
 * delay hop, a redrive) and its `x-death` entries (queue, reason, count and
 * time of each: the count rises when the same AMQP message is dead-lettered
 * again, e.g. moved back by an operator). A redriven message is a new AMQP
 * message, so its next dead-lettering gets another id. A delivery with
 * neither (put into the queue by hand) gets a new random id each time.
 *
 * @example
 * const id = deadLetterRecordId(raw, 'shop.orders.billing.dead', message.id);
 */
export function deadLetterRecordId(raw: DeadDelivery, deadQueue: string, messageId: string): string {
  const headers = raw.properties.headers ?? {};
  const published = headers[PUBLISH_HEADER];
  // A number: a publisher's count before it was named too, not unique across publishers.
  const copy = typeof published === 'string' ? published : undefined;
  const deaths = Array.isArray(headers['x-death']) ? (headers['x-death'] as unknown[]).map(deathOf) : [];
  if (copy === undefined && deaths.length === 0) return uuidv7();
  const hash = createHash('sha256')
    .update(JSON.stringify([deadQueue, messageId, copy ?? null, deaths]))
    .digest('hex');
  const variant = ((Number.parseInt(hash[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hash.slice(0, 8)}-${hash.slice(8, 12)}-8${hash.slice(13, 16)}-${variant}${hash.slice(17, 20)}-${hash.slice(20, 32)}`;
}

/** What names one `x-death` entry: its queue, reason, count and time (amqplib gives a timestamp as `{ value }`). */
function deathOf(entry: unknown): unknown[] {
  const death = (entry ?? {}) as Record<string, unknown>;
  const time = death.time as { value?: unknown } | undefined;
  return [death.queue ?? null, death.reason ?? null, death.count ?? null, time?.value ?? time ?? null];
}
