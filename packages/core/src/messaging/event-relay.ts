import { ValidationError } from '../errors/index.ts';
import { checkEventRelayOptions } from '../options/core-options.ts';
import type { Projection } from '../projections/types.ts';
import { systemOf, traceSend } from '../tracing/messaging-spans.ts';
import { messageFromEvent } from './message.ts';
import type { Transport } from './transport.ts';

export interface EventRelayOptions {
  /** Names the relay's checkpoint (one relay per name runs at a time on PostgreSQL, through the projection lease). */
  name: string;
  transport: Transport;
  topic: string;
  /** The event types to publish. */
  handles: readonly string[];
}

/**
 * The event store as its own outbox: a relay that publishes appended events
 * to a transport in log order (so in order per stream), at least once. It is
 * a projection with external effects: it publishes a batch, then saves its
 * checkpoint, so an event is published only after its append committed, and a
 * crash between the two publishes the batch again (consumers' inboxes drop
 * the repeats: the message id is the event id). While no consumer group has
 * declared a subscription to the topic, the relay holds: the runner reports
 * each try (`onError`, the status's `lastError`) and tries again with backoff
 * (up to `maxBackoffMs`), never counting it as a failed attempt, so the
 * events are published, in order, once a group is declared. Run it with the
 * adapter's projection runner (`startSqliteProjections`, `startPostgresProjections`).
 */
export function defineEventRelay(options: EventRelayOptions): Projection<unknown> {
  checkEventRelayOptions(options);
  if (!options?.transport || typeof options.topic !== 'string' || options.topic.length === 0) {
    throw new ValidationError({ path: 'relay', message: 'needs a transport and a topic' });
  }
  const { transport, topic } = options;
  return {
    name: options.name,
    handles: options.handles,
    effects: 'external',
    handle: async (events) => {
      const messages = events.map(messageFromEvent);
      // Held, not dropped, while no group subscribed: the runner waits and tries again.
      await traceSend(systemOf(transport), topic, messages, () =>
        transport.publish(topic, messages, { requireSubscription: true }),
      );
    },
  };
}
