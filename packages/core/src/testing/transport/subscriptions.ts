import assert from 'node:assert/strict';
import { rejectsWithCode } from '../conformance/context.ts';
import { settlesWithin } from '../wait-until.ts';
import { ackAll, ids, receiveFor, subscribe, type TransportConformanceCase } from './context.ts';

// The subscription model: a group declared with `declareSubscription` gets
// every later publish, whether or not a consumer runs; a publish that requires
// a subscription and finds none writes nothing.

export const subscriptionCases: readonly TransportConformanceCase[] = [
  {
    name: 'a publish requiring a subscription to a topic with none rejects with NoSubscriptionError and writes nothing',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const refused = context.message();
      const error = await rejectsWithCode<{ retryable: boolean; topic: string }>(
        context.transport.publish(topic, [refused], { requireSubscription: true }),
        'NO_SUBSCRIPTION',
      );
      assert.equal(error.retryable, true, 'a consumer may declare its subscription later: worth trying again');
      assert.equal(error.topic, topic);
      await context.transport.declareSubscription(topic, group);
      const accepted = context.message();
      await context.transport.publish(topic, [accepted], { requireSubscription: true });
      const sub = context.transport.subscribe(topic, group);
      const got = await context.receiveAtLeast(sub, 1);
      got.push(...(await receiveFor(sub, 150, 10)));
      assert.deepEqual(ids(got), [accepted.id], 'the refused message was never written, not even for a later group');
      await Promise.all(got.map((d) => d.ack()));
    },
  },
  {
    name: 'a declared group receives what was published before any consumer subscribed; an undeclared one does not',
    async run(context) {
      const topic = context.topic();
      const [declared, alsoDeclared, late] = [context.group('d'), context.group('e'), context.group('l')];
      await context.transport.declareSubscription(topic, declared);
      await context.transport.declareSubscription(topic, alsoDeclared);
      const messages = ['a', 'b', 'a'].map((key, i) => context.message({ key, data: { i } }));
      await context.transport.publish(topic, messages);
      await context.transport.publish(topic, [context.message({ key: 'c' })], { requireSubscription: true });
      for (const group of [declared, alsoDeclared]) {
        const sub = context.transport.subscribe(topic, group);
        const got = await context.receiveAtLeast(sub, 4);
        assert.deepEqual(ids(got).slice(0, 3).sort(), messages.map((m) => m.id).sort(), `${group} got every message`);
        assert.deepEqual(
          got.filter((d) => d.message.key === 'a').map((d) => d.message.id),
          [messages[0]?.id, messages[2]?.id],
          'in publish order per key',
        );
        await Promise.all(got.map((d) => d.ack()));
        await sub.close();
      }
      const lateSub = context.transport.subscribe(topic, late);
      assert.deepEqual(ids(await receiveFor(lateSub, 150, 10)), [], 'a group declared later gets only later messages');
    },
  },
  {
    name: 'declareSubscription is idempotent: declared twice (and at once), the group gets each message once',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      await Promise.all([
        context.transport.declareSubscription(topic, group),
        context.transport.declareSubscription(topic, group),
      ]);
      await context.transport.declareSubscription(topic, group);
      const message = context.message();
      await context.transport.publish(topic, [message]);
      const sub = context.transport.subscribe(topic, group);
      const got = await context.receiveAtLeast(sub, 1);
      got.push(...(await receiveFor(sub, 150, 10)));
      assert.deepEqual(ids(got), [message.id]);
      await Promise.all(got.map((d) => d.ack()));
    },
  },
  {
    name: "a group's last subscription closed, a new subscription of the group on the same transport receives what waits (settled or not before the close)",
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      await context.transport.declareSubscription(topic, group);
      const acked = context.message({ key: 'a' });
      const unsettled = context.message({ key: 'b' });
      const waiting = context.message({ key: 'c' });
      await context.transport.publish(topic, [acked, unsettled]);
      const first = subscribe(context, topic, group, { visibilityTimeoutMs: 1000 });
      const got = await context.receiveAtLeast(first, 2);
      assert.deepEqual(ids(got).sort(), [acked.id, unsettled.id].sort());
      await got.find((d) => d.message.id === acked.id)?.ack();
      // Left unsettled: back to the group at the close, or once its visibility timeout passed.
      await settlesWithin(first.close(), 10_000, 'subscription.close()');
      await context.transport.publish(topic, [waiting]);
      const second = subscribe(context, topic, group);
      const again = await context.receiveAtLeast(second, 2, { deadlineMs: 10_000 });
      again.push(...(await receiveFor(second, 150, 10)));
      assert.deepEqual(
        ids(again).sort(),
        [unsettled.id, waiting.id].sort(),
        'the message left unsettled and the one published after the close, once each; not the acked one',
      );
      await ackAll(again);
      await settlesWithin(second.close(), 10_000, 'subscription.close()');
    },
  },
  {
    name: 'a group subscribed again while its last subscription closes: the new subscription receives what waits, and what is published after',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      await context.transport.declareSubscription(topic, group);
      const before = ['a', 'b', 'c'].map((key) => context.message({ key }));
      await context.transport.publish(topic, before);
      const first = subscribe(context, topic, group);
      const [inHand] = await context.receiveAtLeast(first, 1, { max: 1 });
      const closing = first.close();
      const second = subscribe(context, topic, group);
      // Its handler finishes while the subscription closes.
      await inHand?.ack();
      await settlesWithin(closing, 10_000, 'subscription.close()');
      const after = context.message({ key: 'd' });
      await context.transport.publish(topic, [after]);
      const got = await context.receiveAtLeast(second, 3, { deadlineMs: 10_000 });
      got.push(...(await receiveFor(second, 150, 10)));
      assert.deepEqual(
        ids(got).sort(),
        [...before.filter((m) => m.id !== inHand?.message.id), after].map((m) => m.id).sort(),
        'what the closed subscription left and what came after, once each',
      );
      await ackAll(got);
      await settlesWithin(second.close(), 10_000, 'subscription.close()');
    },
  },
  {
    name: 'publish and declareSubscription refuse bad input with a ValidationError',
    async run(context) {
      const topic = context.topic();
      await context.transport.declareSubscription(topic, context.group());
      const message = context.message();
      const publish = context.transport.publish as (t: string, m: unknown, o: unknown) => Promise<void>;
      await rejectsWithCode(
        publish.call(context.transport, topic, [message], { requireSubscriptions: true }),
        'VALIDATION',
      );
      await rejectsWithCode(
        publish.call(context.transport, topic, [message], { requireSubscription: 'yes' }),
        'VALIDATION',
      );
      await rejectsWithCode(context.transport.declareSubscription('', context.group()), 'VALIDATION');
      await rejectsWithCode(context.transport.declareSubscription(topic, ''), 'VALIDATION');
      const sub = context.transport.subscribe(topic, context.group());
      assert.deepEqual(ids(await receiveFor(sub, 100, 10)), [], 'nothing was written');
    },
  },
  {
    name: 'after close, declareSubscription rejects',
    async run(context) {
      await context.transport.close();
      await rejectsWithCode(context.transport.declareSubscription(context.topic(), context.group()), 'STORE_CLOSED');
    },
  },
];
