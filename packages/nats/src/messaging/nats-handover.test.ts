import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
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
});
