import type { DeadLetter } from '../../messaging/consumer-ports.ts';
import { createMessage } from '../../messaging/message.ts';
import type { Transport } from '../../messaging/transport.ts';

/** A dead record `i` of consumer `name` on `topic`, of a message of its own. */
export function deadRecord(name: string, topic: string, i: number): DeadLetter {
  const at = new Date(Date.UTC(2026, 0, 1) + i * 1000);
  return {
    id: `${name}-${i}`,
    consumer: name,
    topic,
    message: createMessage({ type: 'RefundRequested', data: { i }, key: `order-${i}` }),
    error: { type: 'Error', message: 'card expired' },
    reason: 'not retryable',
    attempts: 1,
    firstFailureAt: at,
    lastFailureAt: at,
    deadLetteredAt: at,
    redrives: [],
    state: 'dead',
  };
}

/** `transport` with the ids of the messages redelivered through it (after `before`, which may refuse). */
export function spyRedeliveries(transport: Transport, before: () => void = () => undefined) {
  const sent: string[] = [];
  const spied: Transport = {
    capabilities: transport.capabilities,
    publish: (topic, messages, options) => transport.publish(topic, messages, options),
    declareSubscription: (topic, group) => transport.declareSubscription(topic, group),
    subscribe: (topic, group, options) => transport.subscribe(topic, group, options),
    async redeliver(topic, group, messages) {
      before();
      await transport.redeliver(topic, group, messages);
      sent.push(...messages.map((m) => m.id));
    },
    close: () => transport.close(),
  };
  return { transport: spied, sent };
}

/** Dead letters: the store's queries, and where dead letters live when the consumer is given no store. */
