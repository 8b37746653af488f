import assert from 'node:assert/strict';
import type { Delivery, Subscription } from '../../messaging/transport.ts';
import { ackAll, assertNothingFor, ids, never, subscribe, type TransportConformanceCase } from './context.ts';

/** Groups: fan-out across groups, competing consumers within one, redelivery to one group. */
export const groupCases: readonly TransportConformanceCase[] = [
  {
    name: 'fan-out: every group of a topic gets every message',
    async run(context) {
      const topic = context.topic();
      const one = subscribe(context, topic, context.group('one'));
      const two = subscribe(context, topic, context.group('two'));
      const messages = [1, 2, 3].map((i) => context.message({ data: { i } }));
      await context.transport.publish(topic, messages);
      const gotOne = await context.receiveAtLeast(one, 3);
      const gotTwo = await context.receiveAtLeast(two, 3);
      const expected = messages.map((m) => m.id).sort();
      assert.deepEqual([...ids(gotOne)].sort(), expected);
      assert.deepEqual([...ids(gotTwo)].sort(), expected);
      await ackAll([...gotOne, ...gotTwo]);
      // Acking in one group leaves the other's copies alone (already acked above); nothing is left anywhere.
      await assertNothingFor(one, 50, 'group one is done');
    },
  },
  {
    name: 'competing consumers: two consumers of one group never hold the same message at once',
    requires: ['competingConsumers'],
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const a = subscribe(context, topic, group);
      const b = subscribe(context, topic, group);
      // A key of its own each: held unsettled, a key's first message keeps its later ones back (per-key order).
      const messages = Array.from({ length: 30 }, (_, i) => context.message({ data: { i } }));
      await context.transport.publish(topic, messages);
      const heldA: Delivery[] = [];
      const heldB: Delivery[] = [];
      const deadline = Date.now() + 5000;
      const drain = async (sub: Subscription, held: Delivery[]) => {
        while (heldA.length + heldB.length < messages.length && Date.now() < deadline) {
          held.push(...(await sub.receive(3, 20, never())));
          // Yield so the other consumer's receive interleaves with this one.
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await Promise.all([drain(a, heldA), drain(b, heldB)]);
      const setA = new Set(ids(heldA));
      const setB = new Set(ids(heldB));
      assert.equal(setA.size, heldA.length, 'consumer A got a message twice while holding it');
      assert.equal(setB.size, heldB.length, 'consumer B got a message twice while holding it');
      assert.deepEqual(
        [...setA].filter((id) => setB.has(id)),
        [],
        'both consumers hold the same message',
      );
      assert.deepEqual([...new Set([...setA, ...setB])].sort(), messages.map((m) => m.id).sort(), 'all delivered');
      await ackAll([...heldA, ...heldB]);
    },
  },
  {
    name: 'redeliver reaches the named group only',
    async run(context) {
      const topic = context.topic();
      const targetGroup = context.group('target');
      const target = subscribe(context, topic, targetGroup);
      const other = subscribe(context, topic, context.group('other'));
      const message = context.message();
      await context.transport.redeliver(topic, targetGroup, [message]);
      const got = await context.receiveAtLeast(target, 1);
      assert.deepEqual(ids(got), [message.id]);
      assert.equal(got[0]?.deliveryCount, 1, 'a redelivered message starts a new delivery count');
      await ackAll(got);
      // A short wait to show the other group did NOT get it.
      await assertNothingFor(other, 150, 'redeliver reached another group');
    },
  },
  {
    name: 'a redeliver to a group not declared yet declares it: its first subscription gets the message, and what was published after the redeliver',
    async run(context) {
      const topic = context.topic();
      const group = context.group('late');
      // A dead-letter redrive before any consumer of the group ran (its subscription never declared here).
      const redriven = context.message({ data: { redriven: true } });
      await context.transport.redeliver(topic, group, [redriven]);
      const published = context.message({ data: { published: true } });
      await context.transport.publish(topic, [published]);
      const sub = subscribe(context, topic, group);
      const got = await context.receiveAtLeast(sub, 2);
      assert.deepEqual([...ids(got)].sort(), [redriven.id, published.id].sort(), 'both messages, once each');
      await ackAll(got);
      await assertNothingFor(sub, 150, 'delivered more than once');
    },
  },
  {
    name: 'a redeliver of a message the group still holds is not lost to the pending ack',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const sub = subscribe(context, topic, group, { visibilityTimeoutMs: 30_000 });
      const message = context.message();
      await context.transport.publish(topic, [message]);
      const [held] = await context.receiveAtLeast(sub, 1);
      // A dead-letter redrive that comes before the dead-lettering consumer acked its delivery.
      await context.transport.redeliver(topic, group, [message]);
      await held?.ack();
      const again = await context.receiveAtLeast(sub, 1, { deadlineMs: 3000 });
      assert.deepEqual(ids(again), [message.id], 'the redelivered message arrives');
      await ackAll(again);
      await assertNothingFor(sub, 150, 'delivered more than once after the redeliver');
    },
  },
];
