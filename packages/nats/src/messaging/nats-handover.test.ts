import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery, type Message, type Subscription } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { natsUnavailable, natsUrl, openManager, removeStreams, testApplication } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('handover');
const created: NatsTransport[] = [];

after(async () => {
  await Promise.all(created.map((t) => t.close()));
  if (!skip) await removeStreams([application]);
});

const never = new AbortController().signal;

describe('nats: a process leaving hands its partitions over', { skip }, () => {
  it('closed while holding unsettled messages: the other process takes every partition and gets those messages at once, not after a claim TTL or an ack wait', async () => {
    // A claim TTL and an ack wait far longer than the waits below: only the handover can make them pass.
    const open = async () => {
      const transport = await getNatsTransport({
        url: natsUrl,
        application,
        partitions: 4,
        claimTtlMs: 120_000,
        ackWaitMs: 120_000,
      });
      created.push(transport);
      return transport;
    };
    const staying = await open();
    const leaving = await open();
    const a = staying.subscribe('tasks', 'workers');
    const b = leaving.subscribe('tasks', 'workers');
    // Two members: the later one claims when the first gives partitions up at its next round.
    await waitUntil(
      () =>
        staying.heldPartitions('tasks', 'workers').length === 2 &&
        leaving.heldPartitions('tasks', 'workers').length === 2,
      'the partitions split two and two',
      60_000,
    );
    const messages = Array.from({ length: 20 }, (_, i) => createMessage({ type: 'Task', key: `k-${i}`, data: { i } }));
    await staying.publish('tasks', messages);
    const heldByLeaving: Delivery[] = [];
    const got: Delivery[] = [];
    await waitUntil(
      async () => {
        heldByLeaving.push(...(await b.receive(20, 50, never)));
        got.push(...(await a.receive(20, 50, never)));
        return heldByLeaving.length + got.length === messages.length;
      },
      'every message handed out',
      10_000,
    );
    assert.ok(heldByLeaving.length > 0, 'the leaving process held messages');
    await Promise.all(got.map((d) => d.ack()));
    await leaving.close();
    await waitUntil(
      () => staying.heldPartitions('tasks', 'workers').length === 4,
      'the staying process to take every partition',
      10_000,
    );
    const again: Delivery[] = [];
    await waitUntil(
      async () => {
        again.push(...(await a.receive(20, 100, never)));
        return again.length >= heldByLeaving.length;
      },
      'the messages the leaving process held',
      10_000,
    );
    assert.deepEqual(again.map((d) => d.message.id).sort(), heldByLeaving.map((d) => d.message.id).sort());
    await Promise.all(again.map((d) => d.ack()));
  });

  it('closing, it pulls no more while its handlers finish: what it never pulled keeps its deliveries for the next holder', async () => {
    const app = `${application}_endpulls`;
    const transport = await getNatsTransport({
      url: natsUrl,
      application: app,
      partitions: 1,
      prefetch: 2,
      claimTtlMs: 120_000,
      ackWaitMs: 120_000,
    });
    created.push(transport);
    const manager = await openManager();
    try {
      await transport.declareSubscription('tasks', 'workers');
      const messages = Array.from({ length: 6 }, (_, i) => createMessage({ type: 'Task', key: `k-${i}`, data: { i } }));
      await transport.publish('tasks', messages);
      const leaving = transport.subscribe('tasks', 'workers');
      const inHand: Delivery[] = [];
      await waitUntil(
        async () => {
          inHand.push(...(await leaving.receive(2 - inHand.length, 100, never)));
          return inHand.length === 2;
        },
        'the prefetch (2) in hand',
        10_000,
      );
      // The handlers finish while the subscription closes: their acks make room, which a pull would fill only
      // to give it back (nak) at the give-up, one more delivery each at the server.
      const closing = leaving.close();
      await Promise.all(inHand.map((d) => d.ack()));
      await closing;
      const info = await manager.jsm.consumers.info(app, topologyNames(app).consumer('tasks', 'workers', 0));
      assert.equal(info.delivered.stream_seq, 2, 'nothing pulled after the close began');
      assert.equal(info.num_ack_pending, 0);

      const nextProcess = await getNatsTransport({ url: natsUrl, application: app, partitions: 1, ackWaitMs: 120_000 });
      created.push(nextProcess);
      const next = nextProcess.subscribe('tasks', 'workers');
      const rest: Delivery[] = [];
      await waitUntil(
        async () => {
          rest.push(...(await next.receive(4, 100, never)));
          return rest.length >= 4;
        },
        'the four messages never pulled',
        10_000,
      );
      assert.deepEqual(
        rest.map((d) => [d.message.id, d.deliveryCount]),
        messages.slice(2).map((m) => [m.id, 1]),
        'each at its first delivery',
      );
      await Promise.all(rest.map((d) => d.ack()));
      await next.close();
    } finally {
      await manager.close();
      await removeStreams([app]);
    }
  });

  it('closing, what its last pull still brings goes back once that pull ended: the group subscribed again on the same transport gets it at its second delivery, not after maxDeliver naks into the open pull', async () => {
    const app = `${application}_late`;
    const transport = await getNatsTransport({
      url: natsUrl,
      application: app,
      partitions: 1,
      claimTtlMs: 120_000,
      ackWaitMs: 120_000,
    });
    created.push(transport);
    try {
      await transport.declareSubscription('tasks', 'workers');
      const first = transport.subscribe('tasks', 'workers');
      const opening = createMessage({ type: 'Task', key: 'k-0', data: {} });
      await transport.publish('tasks', [opening]);
      const [inHand] = await receiveAll(first, 1, 'the first message');
      await inHand?.ack();
      // The reader's pull is open (it waits up to 1 s at the server for more): what is published while the
      // subscription closes reaches that pull after the close began. Published over longer than a pull waits.
      const closing = first.close();
      const during: Message[] = [];
      for (let i = 1; i <= 12; i += 1) {
        const message = createMessage({ type: 'Task', key: `k-${i}`, data: { i } });
        await transport.publish('tasks', [message]);
        during.push(message);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await settlesWithin(closing, 10_000, "the first subscription's close");
      const again = transport.subscribe('tasks', 'workers');
      const got = await receiveAll(again, during.length, 'what was published during the close, on the same transport');
      assert.deepEqual(got.map((d) => d.message.id).sort(), during.map((m) => m.id).sort());
      for (const delivery of got) {
        assert.ok(delivery.deliveryCount <= 2, `${delivery.message.id} came at delivery ${delivery.deliveryCount}`);
      }
      await Promise.all(got.map((d) => d.ack()));
      await settlesWithin(again.close(), 10_000, "the second subscription's close");
    } finally {
      await removeStreams([app]);
    }
  });
});

/** Receives (acknowledging nothing) until `count` deliveries came, failing after 10 s. */
async function receiveAll(subscription: Subscription, count: number, what: string): Promise<Delivery[]> {
  const out: Delivery[] = [];
  await waitUntil(
    async () => {
      out.push(...(await subscription.receive(count - out.length, 100, never)));
      return out.length >= count;
    },
    what,
    10_000,
  );
  return out;
}
