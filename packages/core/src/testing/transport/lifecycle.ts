import assert from 'node:assert/strict';
import type { Delivery, Subscription } from '../../messaging/transport.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import { assertRetryableRefusal, OUTAGE_BOUND_MS, outcomeWithin } from '../outage.ts';
import { untilAccepted } from '../requirements.ts';
import { settlesWithin } from '../wait-until.ts';
import { ackAll, ids, never, subscribe, type TransportConformanceCase } from './context.ts';

/** Receives until `count` deliveries came, riding out the retryable errors of connections lost in a restart. */
async function receiveAcross(subscription: Subscription, count: number, deadlineMs = 30_000): Promise<Delivery[]> {
  const deadline = Date.now() + deadlineMs;
  const out: Delivery[] = [];
  while (out.length < count) {
    if (Date.now() > deadline) assert.fail(`received ${out.length} deliveries after the restart, expected ${count}`);
    out.push(...(await untilAccepted(() => subscription.receive(100, 200, never()), 'a receive after the restart')));
  }
  return out;
}

const closeOrders = ['the subscription, then the transport', 'the transport, then the subscription'] as const;

/** Closing and restarting: what a closed transport refuses, and a transport across a restart of its backend. */
export const lifecycleCases: readonly TransportConformanceCase[] = [
  {
    name: 'after close, publish rejects',
    async run(context) {
      const topic = context.topic();
      subscribe(context, topic, context.group());
      await context.transport.close();
      await rejectsWithCode(context.transport.publish(topic, [context.message()]), 'STORE_CLOSED');
    },
  },
  {
    name: 'after its backend restarts, the transport reconnects: a subscription made before receives what is published after',
    requires: ['restart'],
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const before = context.message();
      await context.transport.publish(topic, [before]);
      await ackAll(await context.receiveAtLeast(sub, 1));
      await context.restart();
      const after = context.message();
      await untilAccepted(() => context.transport.publish(topic, [after]), 'the publish after the restart');
      const got = await receiveAcross(sub, 1);
      assert.deepEqual(ids(got), [after.id]);
      await untilAccepted(() => ackAll(got), 'the ack after the restart');
    },
  },
  {
    name: 'a message accepted before its backend restarts is delivered after it, once',
    requires: ['restart', 'durable'],
    async run(context) {
      const topic = context.topic();
      const sub = subscribe(context, topic, context.group());
      const kept = context.message();
      await context.transport.publish(topic, [kept]);
      await context.restart();
      const got = await receiveAcross(sub, 1);
      assert.deepEqual(ids(got), [kept.id]);
      assert.equal(got[0]?.deliveryCount, 1, 'never handed out before the restart');
      await untilAccepted(() => ackAll(got), 'the ack after the restart');
    },
  },
  ...closeOrders.map(
    (order): TransportConformanceCase => ({
      name: `with its backend gone for good, a publish is refused (retryable); a waiting receive, an ack and closing (${order}) all settle in bounded time`,
      requires: ['outage'],
      async run(context) {
        const topic = context.topic();
        const sub = subscribe(context, topic, context.group());
        await context.transport.publish(topic, [context.message()]);
        // A backend restarted by the case before may take seconds more to serve a new subscription on a busy machine.
        const [held] = await context.receiveAtLeast(sub, 1, { deadlineMs: 20_000 });
        // Waiting on the backend when it goes: only closing ends this wait.
        const waiting = sub.receive(10, 120_000, never()).then(
          () => undefined,
          () => undefined,
        );
        await context.outage();
        const [published, acked] = await Promise.all([
          outcomeWithin(context.transport.publish(topic, [context.message()]), 'a publish with the backend gone'),
          outcomeWithin((held as Delivery).ack(), 'an ack with the backend gone'),
        ]);
        assert.ok(published !== undefined, 'a publish the backend did not take resolved: it must be refused');
        assertRetryableRefusal(published, 'the publish');
        assertRetryableRefusal(acked, 'the ack');
        const closeSubscription = () => settlesWithin(sub.close(), OUTAGE_BOUND_MS, 'subscription.close()');
        const closeTransport = () => settlesWithin(context.transport.close(), OUTAGE_BOUND_MS, 'transport.close()');
        if (order === closeOrders[0]) {
          await closeSubscription();
          await closeTransport();
        } else {
          await closeTransport();
          await closeSubscription();
        }
        await settlesWithin(waiting, OUTAGE_BOUND_MS, 'the receive waiting when the backend went');
      },
    }),
  ),
];
