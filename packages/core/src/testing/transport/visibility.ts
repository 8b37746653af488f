import assert from 'node:assert/strict';
import { assertNothingFor, subscribe, type TransportConformanceCase } from './context.ts';

/** Settling a delivery: ack, release, extend, and the visibility timeout of one left unsettled. */
export const visibilityCases: readonly TransportConformanceCase[] = [
  {
    name: 'ack removes a message for good',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const sub = subscribe(context, topic, group, { visibilityTimeoutMs: 100 });
      const message = context.message();
      await context.transport.publish(topic, [message]);
      const [delivery] = await context.receiveAtLeast(sub, 1);
      await delivery?.ack();
      // Well past the visibility timeout: an acked message must not come back, to this or a new consumer.
      await assertNothingFor(sub, 300, 'an acked message came back');
      const again = subscribe(context, topic, group, { visibilityTimeoutMs: 100 });
      await assertNothingFor(again, 50, 'an acked message came back to another consumer');
    },
  },
  {
    name: 'release(0) gives the message back at once, with deliveryCount 2',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const message = context.message();
      await context.transport.publish(topic, [message]);
      const [first] = await context.receiveAtLeast(sub, 1);
      assert.equal(first?.deliveryCount, 1);
      await first?.release(0);
      const [second, ...rest] = await context.receiveAtLeast(sub, 1, { deadlineMs: 2000 });
      assert.equal(rest.length, 0);
      assert.equal(second?.message.id, message.id);
      assert.equal(second?.deliveryCount, 2);
      await second?.ack();
    },
  },
  {
    name: 'release(delay) keeps the message away until the delay passed',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      await context.transport.publish(topic, [context.message()]);
      const [first] = await context.receiveAtLeast(sub, 1);
      const releasedAt = Date.now();
      await first?.release(400);
      const [second] = await context.receiveAtLeast(sub, 1, { deadlineMs: 5000 });
      const waited = Date.now() - releasedAt;
      assert.ok(waited >= 380, `it came back after ${waited} ms, before the 400 ms delay`);
      assert.equal(second?.message.id, first?.message.id);
      assert.equal(second?.deliveryCount, 2);
      await second?.ack();
    },
  },
  {
    name: 'an unsettled delivery comes back after the visibility timeout',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group(), { visibilityTimeoutMs: 100 });
      await context.transport.publish(topic, [context.message()]);
      const receivedAt = Date.now();
      const [first] = await context.receiveAtLeast(sub, 1);
      const [second] = await context.receiveAtLeast(sub, 1, { deadlineMs: 5000 });
      const waited = Date.now() - receivedAt;
      assert.ok(waited >= 90, `it came back after ${waited} ms, before the 100 ms visibility timeout`);
      assert.equal(second?.message.id, first?.message.id);
      assert.equal(second?.deliveryCount, 2);
      await second?.ack();
    },
  },
  {
    name: 'settling an expired delivery does nothing: its message went to someone else',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group(), { visibilityTimeoutMs: 100 });
      await context.transport.publish(topic, [context.message()]);
      const [stale] = await context.receiveAtLeast(sub, 1);
      const [current] = await context.receiveAtLeast(sub, 1, { deadlineMs: 5000 });
      assert.equal(current?.deliveryCount, 2);
      await stale?.ack();
      await stale?.release(0);
      // The current holder still has it: the stale settles neither removed it nor made it visible.
      await current?.extend(5000);
      await assertNothingFor(sub, 150, 'a stale release made the message visible');
      await current?.release(0);
      const [third] = await context.receiveAtLeast(sub, 1, { deadlineMs: 2000 });
      assert.equal(third?.message.id, current?.message.id, 'a stale ack removed the message');
      assert.equal(third?.deliveryCount, 3);
      await third?.ack();
    },
  },
  {
    name: 'extend keeps a delivery away past its original timeout',
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group(), { visibilityTimeoutMs: 150 });
      await context.transport.publish(topic, [context.message()]);
      const [first] = await context.receiveAtLeast(sub, 1);
      const extendedAt = Date.now();
      await first?.extend(600);
      // Twice the original timeout: without the extension it would be back by now.
      await assertNothingFor(sub, 300, 'it came back at the original timeout');
      const [second] = await context.receiveAtLeast(sub, 1, { deadlineMs: 5000 });
      const waited = Date.now() - extendedAt;
      assert.ok(waited >= 580, `it came back after ${waited} ms, before the 600 ms extension`);
      assert.equal(second?.deliveryCount, 2);
      await second?.ack();
    },
  },
];
