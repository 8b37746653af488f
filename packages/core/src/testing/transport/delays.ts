import assert from 'node:assert/strict';
import { ackAll, ids, subscribe, type TransportConformanceCase } from './context.ts';

/** Delayed delivery: a message held until its `deliverAt` (transports declaring delayedDelivery). */
export const delayCases: readonly TransportConformanceCase[] = [
  {
    name: 'deliverAt delays a message; messages due now still flow',
    requires: ['delayedDelivery'],
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      // Far enough ahead that a loaded machine still hands out the message due now first.
      const deliverAt = new Date(Date.now() + 1500);
      const later = context.message({ deliverAt, data: { when: 'later' } });
      const now = context.message({ data: { when: 'now' } });
      await context.transport.publish(topic, [later, now]);
      const first = await context.receiveAtLeast(sub, 1, { deadlineMs: 2000 });
      assert.deepEqual(ids(first), [now.id], 'only the message due now');
      await ackAll(first);
      const second = await context.receiveAtLeast(sub, 1, { deadlineMs: 5000 });
      assert.ok(Date.now() >= deliverAt.getTime(), 'the delayed message came before its deliverAt');
      assert.deepEqual(ids(second), [later.id]);
      assert.equal(second[0]?.message.deliverAt?.getTime(), deliverAt.getTime());
      await ackAll(second);
    },
  },
  {
    name: 'a message due now is handed out behind hundreds of messages scheduled later',
    requires: ['delayedDelivery'],
    async run(context) {
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
];
