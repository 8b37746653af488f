import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { partitionOf } from '../topology.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('backlog');

after(async () => {
  if (!skip) await removeStreams([application]);
});

/** The stream names and the application's consumer names on the server now. */
async function serverObjects(): Promise<{ streams: string[]; consumers: string[] }> {
  const nc = await connect({ servers: natsUrl, timeout: 3000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const streams = (await jsm.streams.names().next()).sort();
    const consumers = (await jsm.consumers.list(application).next()).map((c) => c.name).sort();
    return { streams, consumers };
  } finally {
    await nc.close();
  }
}

const open = () => getNatsTransport({ url: natsUrl, application, partitions: 2, ackWaitMs: 30_000 });
const backlogOf = async (transport: NatsTransport, group: string) =>
  (await transport.backlog?.('orders', group)) ?? assert.fail('the NATS transport tells its backlog');
const signal = new AbortController().signal;

describe('nats: backlog', { skip }, () => {
  it('tells nothing for a group not declared, and creates nothing by asking', async () => {
    const transport = await open();
    try {
      const before = await serverObjects();
      assert.deepEqual(await backlogOf(transport, 'nobody'), { messages: 0, oldestAt: undefined });
      assert.deepEqual(await serverObjects(), before);
      assert.ok(!before.consumers.some((name) => name.includes('nobody')));
    } finally {
      await transport.close();
    }
  });

  it("counts a group's unread, in-delivery and delayed messages over its partitions, and the oldest one's time", async () => {
    const transport = await open();
    try {
      await transport.declareSubscription('orders', 'billing');
      assert.deepEqual(await backlogOf(transport, 'billing'), { messages: 0, oldestAt: undefined });
      const keys = Array.from({ length: 6 }, (_, i) => `order-${i}`);
      assert.deepEqual(new Set(keys.map((key) => partitionOf(key, 2))), new Set([0, 1]), 'both partitions hold some');
      const before = Date.now();
      await transport.publish(
        'orders',
        keys.map((key) => createMessage({ type: 'OrderPlaced', key, data: {} })),
      );
      const waiting = await backlogOf(transport, 'billing');
      assert.equal(waiting.messages, 6);
      const oldestAt = waiting.oldestAt ?? assert.fail('an oldest message');
      assert.ok(oldestAt >= before - 1000 && oldestAt <= Date.now(), `oldestAt ${oldestAt} since ${before}`);

      const subscription = transport.subscribe('orders', 'billing');
      const got: Delivery[] = [];
      await waitUntil(async () => {
        got.push(...(await subscription.receive(6 - got.length, 200, signal)));
        return got.length === 6;
      }, 'all six handed out');
      assert.equal((await backlogOf(transport, 'billing')).messages, 6, 'in delivery still counts');
      await Promise.all(got.slice(0, 2).map((d) => d.ack()));
      await waitUntil(async () => (await backlogOf(transport, 'billing')).messages === 4, 'two acknowledged');
      await (got[2] as Delivery).release(60_000);
      assert.equal((await backlogOf(transport, 'billing')).messages, 4, 'a delayed release still counts');
      assert.ok(((await backlogOf(transport, 'billing')).oldestAt ?? 0) >= before - 1000);
      await subscription.close();
    } finally {
      await transport.close();
    }
  });

  it("tells the oldest of its own messages when another group's older ones are still in the stream", async () => {
    const transport = await open();
    try {
      await transport.declareSubscription('orders', 'archive');
      // An hour old, kept in the stream for `archive` (interest retention); `late` is declared after them.
      const hourAgo = Date.now() - 3_600_000;
      await transport.publish('orders', [
        createMessage({ type: 'OrderPlaced', key: 'order-0', data: {} }, () => hourAgo),
        createMessage({ type: 'OrderPlaced', key: 'order-0', data: {} }, () => hourAgo),
      ]);
      await transport.declareSubscription('orders', 'late');
      const before = Date.now();
      await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-0', data: {} })]);
      assert.equal((await backlogOf(transport, 'late')).messages, 1);
      const subscription = transport.subscribe('orders', 'late');
      const got = await waitUntil(async () => {
        const batch = await subscription.receive(1, 200, signal);
        return batch.length === 1 ? batch : undefined;
      }, 'the message handed out');
      // Delivered, nothing acknowledged yet: the consumer's ack floor is still the stream's start.
      const waiting = await backlogOf(transport, 'late');
      assert.equal(waiting.messages, 1);
      assert.ok((waiting.oldestAt ?? 0) >= before - 1000, `not the hour-old messages: ${waiting.oldestAt}`);
      assert.equal((await backlogOf(transport, 'archive')).oldestAt, hourAgo, 'the body’s createdAt');
      await got[0]?.ack();
      await waitUntil(async () => (await backlogOf(transport, 'late')).messages === 0, 'acknowledged');
      assert.equal((await backlogOf(transport, 'late')).oldestAt, undefined);
      await subscription.close();
    } finally {
      await transport.close();
    }
  });
});
