import assert from 'node:assert/strict';
import { ids, receiveFor, type TransportConformanceCase } from './context.ts';

/** Per-key order across the subscriptions of one group, and behind a key's delayed first message. */
export const keyOrderCases: readonly TransportConformanceCase[] = [
  {
    name: 'per-key order across competing subscriptions: a key is held by one subscription until its earlier messages are settled',
    requires: ['perKeyOrder', 'competingConsumers'],
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const a = context.transport.subscribe(topic, group);
      const b = context.transport.subscribe(topic, group);
      const k = [0, 1, 2].map((i) => context.message({ key: 'k', data: { i } }));
      const other = context.message({ key: 'other' });
      await context.transport.publish(topic, [...k, other]);
      const [head, ...more] = await context.receiveAtLeast(a, 1, { max: 1 });
      assert.deepEqual([head?.message.id, more.length], [k[0]?.id, 0], 'the first message of key k');
      // The other key comes (waited for, however slow the machine); key k's later messages do not.
      const meanwhile = await context.receiveAtLeast(b, 1, { deadlineMs: 5000 });
      meanwhile.push(...(await receiveFor(b, 150)));
      assert.deepEqual(ids(meanwhile), [other.id], "key k's later messages wait while its first is in flight");
      await head?.ack();
      const rest = await context.receiveAtLeast(b, 2, { deadlineMs: 5000 });
      assert.deepEqual(ids(rest), [k[1]?.id, k[2]?.id], 'once it is settled, the rest of key k in order');
      await Promise.all([...meanwhile, ...rest].map((d) => d.ack()));
    },
  },
  {
    name: 'per-key order: a key whose first message is delayed (deliverAt, or released with a delay) waits whole',
    requires: ['perKeyOrder', 'delayedDelivery'],
    async run(context) {
      const topic = context.topic();
      const sub = context.transport.subscribe(topic, context.group());
      // Delays far longer than the quiet window below, so a slow machine cannot make them due inside it.
      const delayMs = 1500;
      const deliverAt = new Date(Date.now() + delayMs);
      const scheduled = [context.message({ key: 's', deliverAt }), context.message({ key: 's' })];
      const firstR = context.message({ key: 'r' });
      const secondR = context.message({ key: 'r' });
      const released = [firstR, secondR];
      await context.transport.publish(topic, [firstR, ...scheduled]);
      const [first, ...others] = await context.receiveAtLeast(sub, 1, { max: 1 });
      assert.equal(first?.message.id, firstR.id);
      assert.deepEqual(others, []);
      const releasedAt = Date.now();
      await first?.release(delayMs);
      await context.transport.publish(topic, [secondR]);
      const early = await receiveFor(sub, 150);
      // Only a window that closed before either delay ran out can show that nothing came early (a
      // machine stalled for longer leaves the order checks below).
      if (Date.now() < Math.min(deliverAt.getTime(), releasedAt + delayMs)) {
        assert.deepEqual(ids(early), [], 'nothing of a key whose first message is not due yet');
      }
      const rest = early.length < 4 ? await context.receiveAtLeast(sub, 4 - early.length, { deadlineMs: 10_000 }) : [];
      const later = [...early, ...rest];
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
