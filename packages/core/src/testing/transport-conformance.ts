import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Message, type MessageInput } from '../messaging/message.ts';
import type { Delivery, SubscribeOptions, Subscription, Transport } from '../messaging/transport.ts';
import { rejectsWithCode, uniqueCategory } from './conformance/context.ts';
import { transportKeyOrderCases } from './transport-key-order-cases.ts';
import { transportSubscriptionCases } from './transport-subscription-cases.ts';
import { transportValidationCases } from './transport-validation-cases.ts';

/** What one transport case gets: a fresh transport and names no other case uses. */
export interface TransportCaseContext {
  transport: Transport;
  /** A topic name unique to this run. */
  topic(label?: string): string;
  /** A group name unique to this run. */
  group(label?: string): string;
  /** A new message (type `'ConformanceTested'`, data `{}` unless given). */
  message(input?: Partial<MessageInput>): Message;
  /**
   * Receives from `subscription` until `count` deliveries arrived (more may
   * come), failing after `deadlineMs`. Deliveries are not settled.
   */
  receiveAtLeast(subscription: Subscription, count: number, options?: ReceiveOptions): Promise<Delivery[]>;
}

export interface ReceiveOptions {
  /** Longest time to keep receiving. Default 5000 ms. */
  deadlineMs?: number;
  /** `max` per receive call. Default 100. */
  max?: number;
}

export interface TransportConformanceCase {
  name: string;
  run(context: TransportCaseContext): Promise<void>;
}

export interface TransportConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /**
   * Called once per case; the transport is closed when the case ends. It may
   * share its storage with earlier transports: every case uses topics and
   * groups of its own.
   */
  createTransport: () => Promise<Transport> | Transport;
  /** Called once after the whole suite, e.g. to delete a file. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason. */
  skip?: string | false;
}

// ---------------------------------------------------------------------------
// Helpers shared by the cases.

const never = () => new AbortController().signal;

async function receiveAtLeast(
  subscription: Subscription,
  count: number,
  options: ReceiveOptions = {},
): Promise<Delivery[]> {
  const deadline = Date.now() + (options.deadlineMs ?? 5000);
  const out: Delivery[] = [];
  while (out.length < count) {
    const left = deadline - Date.now();
    if (left <= 0) assert.fail(`received ${out.length} deliveries, expected at least ${count} in time`);
    out.push(...(await subscription.receive(options.max ?? 100, Math.min(left, 200), never())));
  }
  return out;
}

/** Receives for `waitMs` and asserts nothing came: proves something does NOT happen, so it must wait. */
async function assertNothingFor(subscription: Subscription, waitMs: number, why: string): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let left = waitMs; left > 0; left = deadline - Date.now()) {
    const got = await subscription.receive(10, left, never());
    assert.deepEqual(
      got.map((d) => d.message.id),
      [],
      why,
    );
  }
}

const ids = (deliveries: readonly Delivery[]) => deliveries.map((d) => d.message.id);

const ackAll = (deliveries: readonly Delivery[]) => Promise.all(deliveries.map((d) => d.ack()));

const subscribe = (context: TransportCaseContext, topic: string, group: string, options?: SubscribeOptions) =>
  context.transport.subscribe(topic, group, options);

// ---------------------------------------------------------------------------
// The cases.

export const transportConformanceCases: readonly TransportConformanceCase[] = [
  ...transportValidationCases,
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
      if (context.transport.capabilities.perKeyOrder) {
        // Without per-key order the consumer sorts; with it, publish order overall is expected here.
        assert.deepEqual(
          ids(got),
          published.map((m) => m.id),
          'publish order',
        );
      }
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
    async run(context) {
      if (!context.transport.capabilities.competingConsumers) return;
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
  {
    name: 'deliverAt delays a message; messages due now still flow',
    async run(context) {
      if (!context.transport.capabilities.delayedDelivery) return;
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const deliverAt = new Date(Date.now() + 400);
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
  {
    name: 'after close, publish rejects',
    async run(context) {
      const topic = context.topic();
      subscribe(context, topic, context.group());
      await context.transport.close();
      await rejectsWithCode(context.transport.publish(topic, [context.message()]), 'STORE_CLOSED');
    },
  },
  ...transportSubscriptionCases,
  ...transportKeyOrderCases,
];

/**
 * Registers the transport contract with `node:test`: one test per case.
 * Every transport adapter runs it against itself; the cases are also exported
 * as data (`transportConformanceCases`) for other test runners.
 *
 * @example
 * testTransportConformance({ name: 'in-memory', createTransport: () => getInMemoryTransport() });
 */
export function testTransportConformance(options: TransportConformanceOptions): void {
  describe(`Transport conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await options.teardown?.();
    });
    for (const conformanceCase of transportConformanceCases) {
      it(conformanceCase.name, async () => {
        const transport = await options.createTransport();
        try {
          await conformanceCase.run({
            transport,
            topic: (label = 't') => uniqueCategory(label),
            group: (label = 'g') => uniqueCategory(label),
            message: (input = {}) => createMessage({ type: 'ConformanceTested', data: {}, ...input }),
            receiveAtLeast,
          });
        } finally {
          await transport.close();
        }
      });
    }
  });
}
