import assert from 'node:assert/strict';
import type { Delivery } from '../../messaging/transport.ts';
import { ackAll, assertNothingFor, ids, never, subscribe, type TransportConformanceCase } from './context.ts';

/** Delivery: what a subscription receives, whole, in order, from when, and how receive waits. */
export const deliveryCases: readonly TransportConformanceCase[] = [
  {
    name: 'delivers what was published, whole and in publish order per key',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const first = ['a', 'b', 'a', 'c', 'a'].map((key, i) =>
        context.message({ key, data: { i, nested: { list: [1, 'two', null] } }, headers: { 'x-i': String(i) } }),
      );
      const second = ['b', 'a', 'c', 'b'].map((key, i) =>
        context.message({ key, data: { i: i + first.length }, metadata: { correlationId: `c-${i}`, custom: 'yes' } }),
      );
      await context.transport.publish(topic, first);
      await context.transport.publish(topic, second);
      const published = [...first, ...second];
      const got = await context.receiveAtLeast(sub, published.length);
      assert.deepEqual([...ids(got)].sort(), published.map((m) => m.id).sort(), 'every message once');
      for (const delivery of got) {
        const original = published.find((m) => m.id === delivery.message.id);
        assert.deepEqual(delivery.message, original, 'the envelope arrives unchanged');
        assert.ok(delivery.message.createdAt instanceof Date, 'createdAt is a Date');
        assert.equal(delivery.deliveryCount, 1);
      }
      for (const key of ['a', 'b', 'c']) {
        assert.deepEqual(
          got.filter((d) => d.message.key === key).map((d) => d.message.id),
          published.filter((m) => m.key === key).map((m) => m.id),
          `key ${key} in publish order`,
        );
      }
      await ackAll(got);
    },
  },
  {
    name: 'with per-key order, a lone subscription receives in publish order across keys and publishes',
    requires: ['perKeyOrder'],
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const first = ['a', 'b', 'a', 'c', 'a'].map((key, i) => context.message({ key, data: { i } }));
      const second = ['b', 'a', 'c', 'b'].map((key, i) => context.message({ key, data: { i: i + first.length } }));
      await context.transport.publish(topic, first);
      await context.transport.publish(topic, second);
      const got = await context.receiveAtLeast(sub, first.length + second.length);
      // Without per-key order a consumer sorts by key itself; with it, one subscription sees publish order.
      assert.deepEqual(
        ids(got),
        [...first, ...second].map((m) => m.id),
        'publish order',
      );
      await ackAll(got);
    },
  },
  {
    name: 'a group receives what is published after it first subscribed',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const before = context.message();
      await context.transport.publish(topic, [before]);
      const sub = subscribe(context, topic, group);
      const after = context.message();
      await context.transport.publish(topic, [after]);
      const got = await context.receiveAtLeast(sub, 1);
      assert.deepEqual(ids(got), [after.id]);
      await ackAll(got);
      await assertNothingFor(sub, 100, 'the message published before the group existed never arrives');
    },
  },
  {
    name: 'a waiting receive returns as soon as a message is published',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const started = Date.now();
      const pending = sub.receive(10, 10_000, never());
      const message = context.message();
      await context.transport.publish(topic, [message]);
      const got = await pending;
      assert.deepEqual(ids(got), [message.id]);
      assert.ok(Date.now() - started < 5000, 'it did not wait out waitMs');
      await ackAll(got);
    },
  },
  {
    name: 'receive honours max, and returns [] once waitMs passed with nothing',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const messages = Array.from({ length: 5 }, (_, i) => context.message({ data: { i } }));
      await context.transport.publish(topic, messages);
      const two = await sub.receive(2, 2000, never());
      assert.ok(two.length >= 1 && two.length <= 2, `receive(2) returned ${two.length}`);
      const rest = await context.receiveAtLeast(sub, 5 - two.length, { max: 2 });
      assert.deepEqual([...ids(two), ...ids(rest)].sort(), messages.map((m) => m.id).sort());
      await ackAll([...two, ...rest]);
      const started = Date.now();
      const empty = await sub.receive(10, 150, never());
      const waited = Date.now() - started;
      assert.deepEqual(empty, []);
      assert.ok(waited >= 140, `returned after ${waited} ms, before waitMs`);
      assert.ok(waited < 3000, `returned after ${waited} ms, long after waitMs`);
    },
  },
  {
    name: 'receive never hands out more than max, with keys repeating in the queue',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      // Runs of one key between others: a claim that takes a key's run must still stop at max.
      const messages = ['a', 'a', 'b', 'c', 'c', 'd', 'd', 'd', 'e'].map((key, i) =>
        context.message({ key: `${key}-${topic}`, data: { i } }),
      );
      await context.transport.publish(topic, messages);
      // Each receive is checked against its max; each batch acked before the next, so every key moves on.
      const got: Delivery[] = [];
      while (got.length < messages.length) {
        const batch = await context.receiveAtLeast(sub, 1, { max: 2 });
        await ackAll(batch);
        got.push(...batch);
      }
      assert.deepEqual(ids(got).sort(), messages.map((m) => m.id).sort());
    },
  },
  {
    name: 'receive resolves early with [] when its signal aborts',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const controller = new AbortController();
      const started = Date.now();
      const pending = sub.receive(10, 30_000, controller.signal);
      setTimeout(() => controller.abort(), 50);
      const got = await pending;
      assert.deepEqual(got, []);
      assert.ok(Date.now() - started < 5000, 'it did not resolve on abort');
    },
  },
];
