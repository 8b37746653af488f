import assert from 'node:assert/strict';
import type { Delivery, Subscription } from '../messaging/transport.ts';
import type { TransportConformanceCase } from './transport-conformance.ts';

const never = () => new AbortController().signal;
const ids = (deliveries: readonly Delivery[]) => deliveries.map((d) => d.message.id);

/** Everything `subscription` hands out within `waitMs` (proves something is held back, so it must wait). */
async function receiveFor(subscription: Subscription, waitMs: number): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const deadline = Date.now() + waitMs;
  for (let left = waitMs; left > 0; left = deadline - Date.now()) {
    out.push(...(await subscription.receive(100, left, never())));
  }
  return out;
}

/** Per-key order across the subscriptions of one group (transports declaring perKeyOrder and competingConsumers). */
export const transportKeyOrderCases: readonly TransportConformanceCase[] = [
  {
    name: 'per-key order across competing subscriptions: a key is held by one subscription until its earlier messages are settled',
    async run(context) {
      const { perKeyOrder, competingConsumers } = context.transport.capabilities;
      if (!perKeyOrder || !competingConsumers) return;
      const topic = context.topic();
      const group = context.group();
      const a = context.transport.subscribe(topic, group);
      const b = context.transport.subscribe(topic, group);
      const k = [0, 1, 2].map((i) => context.message({ key: 'k', data: { i } }));
      const other = context.message({ key: 'other' });
      await context.transport.publish(topic, [...k, other]);
      const [head, ...more] = await context.receiveAtLeast(a, 1, { max: 1 });
      assert.deepEqual([head?.message.id, more.length], [k[0]?.id, 0], 'the first message of key k');
      const meanwhile = await receiveFor(b, 150);
      assert.deepEqual(ids(meanwhile), [other.id], "key k's later messages wait while its first is in flight");
      await head?.ack();
      const rest = await context.receiveAtLeast(b, 2, { deadlineMs: 5000 });
      assert.deepEqual(ids(rest), [k[1]?.id, k[2]?.id], 'once it is settled, the rest of key k in order');
      await Promise.all([...meanwhile, ...rest].map((d) => d.ack()));
    },
  },
  {
    name: 'a message due now is handed out behind hundreds of messages scheduled later',
    async run(context) {
      if (!context.transport.capabilities.delayedDelivery) return;
      const topic = context.topic();
      const sub = context.transport.subscribe(topic, context.group());
      const later = new Date(Date.now() + 3_600_000);
      const scheduled = Array.from({ length: 600 }, () => context.message({ deliverAt: later }));
      const due = context.message();
      await context.transport.publish(topic, [...scheduled, due]);
      const got = await context.receiveAtLeast(sub, 1, { max: 1 });
      assert.deepEqual(ids(got), [due.id]);
      await Promise.all(got.map((d) => d.ack()));
    },
  },
  {
    name: 'per-key order: a key whose first message is delayed (deliverAt, or released with a delay) waits whole',
    async run(context) {
      const { perKeyOrder, delayedDelivery } = context.transport.capabilities;
      if (!perKeyOrder || !delayedDelivery) return;
      const topic = context.topic();
      const sub = context.transport.subscribe(topic, context.group());
      const deliverAt = new Date(Date.now() + 300);
      const scheduled = [context.message({ key: 's', deliverAt }), context.message({ key: 's' })];
      const firstR = context.message({ key: 'r' });
      const secondR = context.message({ key: 'r' });
      const released = [firstR, secondR];
      await context.transport.publish(topic, [firstR, ...scheduled]);
      const [first, ...others] = await context.receiveAtLeast(sub, 1, { max: 1 });
      assert.equal(first?.message.id, firstR.id);
      assert.deepEqual(others, []);
      await first?.release(300);
      await context.transport.publish(topic, [secondR]);
      const early = await receiveFor(sub, 150);
      assert.deepEqual(ids(early), [], 'nothing of a key whose first message is not due yet');
      const later = await context.receiveAtLeast(sub, 4, { deadlineMs: 5000 });
      assert.ok(Date.now() >= deliverAt.getTime(), 'the scheduled message came before its deliverAt');
      for (const key of ['s', 'r']) {
        assert.deepEqual(
          ids(later.filter((d) => d.message.key === key)),
          (key === 's' ? scheduled : released).map((m) => m.id),
          `key ${key} in publish order`,
        );
      }
      await Promise.all(later.map((d) => d.ack()));
    },
  },
];
