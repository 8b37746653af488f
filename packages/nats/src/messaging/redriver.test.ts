import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery, type Message, type Subscription } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { partitionOf, topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';
import { getNatsRedriver } from './redriver.ts';

const skip = await natsUnavailable();
const application = testApplication('redrive');
/** An application whose stream nobody creates. */
const absent = testApplication('redrive_absent');
const names = topologyNames(application);
const signal = new AbortController().signal;

after(async () => {
  if (!skip) await removeStreams([application, absent]);
});

type Failure = Error & { code?: string; retryable?: boolean };

async function withManager<T>(work: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: natsUrl, timeout: 3000, reconnect: false });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

/** The application's consumers with the settings a redriver must leave alone, and the stream's last sequence. */
const serverState = () =>
  withManager(async (jsm) => {
    const consumers = (await jsm.consumers.list(application).next())
      .map((c) => ({
        name: c.name,
        filter: c.config.filter_subject,
        maxDeliver: c.config.max_deliver,
        ackWait: c.config.ack_wait,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
    // This file's only: other test files make and delete theirs meanwhile.
    const streams = (await jsm.streams.names().next()).filter((s) => s.includes(application) || s === absent).sort();
    return { consumers, streams, lastSeq: (await jsm.streams.info(application)).state.last_seq };
  });

/** Every delivery `subscription` hands out until `count` arrived (acknowledged), within the deadline. */
async function receiveAll(subscription: Subscription, count: number, what: string): Promise<Message[]> {
  const got: Delivery[] = [];
  await waitUntil(async () => {
    got.push(...(await subscription.receive(count - got.length, 200, signal)));
    return got.length >= count;
  }, what);
  await Promise.all(got.map((delivery) => delivery.ack()));
  return got.map((delivery) => delivery.message);
}

const byId = (messages: readonly Message[]) =>
  messages.map((m) => ({ id: m.id, type: m.type, key: m.key, data: m.data })).sort((a, b) => a.id.localeCompare(b.id));

describe('nats: redriver', { skip }, () => {
  it('counts the partitions of a declared group and sends to that group only, changing no consumer', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 3, maxDeliver: 7 });
    const redriver = await getNatsRedriver({ url: natsUrl, application });
    const subscriptions: Subscription[] = [];
    try {
      await transport.declareSubscription('orders', 'billing');
      await transport.declareSubscription('orders', 'shipping');
      const before = await serverState();
      assert.equal(before.consumers.length, 6);
      assert.ok(before.consumers.every((c) => c.maxDeliver === 7));

      assert.equal(await redriver.partitions('orders', 'billing'), 3);
      const keys = ['order-1', 'order-3'];
      assert.notEqual(partitionOf('order-1', 3), partitionOf('order-3', 3), 'two partitions');
      const dead = keys.map((key, i) => createMessage({ type: 'OrderPlaced', key, data: { orderId: key, total: i } }));
      await redriver.redeliver('orders', 'billing', dead);

      const billing = transport.subscribe('orders', 'billing');
      subscriptions.push(billing);
      assert.deepEqual(byId(await receiveAll(billing, 2, 'the redriven messages at billing')), byId(dead));

      const shipping = transport.subscribe('orders', 'shipping');
      subscriptions.push(shipping);
      assert.deepEqual(await shipping.receive(10, 300, signal), [], 'nothing redriven reaches shipping');
      // Published after the redrive on the same keys (so the same partitions): shipping gets these and only these.
      const later = keys.map((key) => createMessage({ type: 'OrderShipped', key, data: { orderId: key } }));
      await transport.publish('orders', later);
      assert.deepEqual(byId(await receiveAll(shipping, 2, 'the published messages at shipping')), byId(later));
      assert.deepEqual(await shipping.receive(10, 300, signal), []);

      assert.deepEqual((await serverState()).consumers, before.consumers, 'no consumer made or changed');
    } finally {
      for (const subscription of subscriptions) await subscription.close();
      await redriver.close();
      await transport.close();
    }
  });

  it('sends to a group named "all" (or "to") only: a redrive subject ends .to.all, not a publish to every group', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 2 });
    const redriver = await getNatsRedriver({ url: natsUrl, application });
    const subscriptions: Subscription[] = [];
    try {
      for (const group of ['all', 'to', 'billing']) await transport.declareSubscription('payments', group);
      const dead = (type: string) => createMessage({ type, key: 'payment-1', data: { type } });
      const toAll = [dead('ByTransport'), dead('ByRedriver')];
      await transport.redeliver('payments', 'all', [toAll[0] as Message]);
      await redriver.redeliver('payments', 'all', [toAll[1] as Message]);
      const toTo = [dead('ToGroupTo')];
      await redriver.redeliver('payments', 'to', toTo);

      const all = transport.subscribe('payments', 'all');
      const to = transport.subscribe('payments', 'to');
      const billing = transport.subscribe('payments', 'billing');
      subscriptions.push(all, to, billing);
      assert.deepEqual(byId(await receiveAll(all, 2, 'the redrives at group "all"')), byId(toAll));
      assert.deepEqual(byId(await receiveAll(to, 1, 'the redrive at group "to"')), byId(toTo));
      // Published after the redrives on the same key (so the same partition): billing gets this and only this.
      const later = [createMessage({ type: 'PaymentTaken', key: 'payment-1', data: {} })];
      await transport.publish('payments', later);
      assert.deepEqual(byId(await receiveAll(billing, 1, 'the published message at billing')), byId(later));
      assert.deepEqual(await billing.receive(10, 300, signal), [], 'no redrive reaches billing');
      assert.deepEqual(byId(await receiveAll(all, 1, 'the published message at "all"')), byId(later));
      assert.deepEqual(await all.receive(10, 300, signal), [], 'the redrive to "to" does not reach "all"');
    } finally {
      for (const subscription of subscriptions) await subscription.close();
      await redriver.close();
      await transport.close();
    }
  });

  it('refuses a group not declared with a TransportError, sending and creating nothing', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 3 });
    const redriver = await getNatsRedriver({ url: natsUrl, application });
    const elsewhere = await getNatsRedriver({ url: natsUrl, application: absent });
    try {
      await transport.declareSubscription('orders', 'billing');
      const before = await serverState();
      assert.equal(await redriver.partitions('orders', 'nobody'), 0);
      const message = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      await assert.rejects(redriver.redeliver('orders', 'nobody', [message]), (error: Failure) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, false);
        assert.match(error.message, /group 'nobody' of topic 'orders'/);
        return true;
      });
      assert.deepEqual(await serverState(), before, 'nothing published, no consumer made');
      await withManager((jsm) =>
        assert.rejects(jsm.consumers.info(application, names.consumer('orders', 'nobody', 0)), /not found/),
      );

      // A 0 is not remembered: a group declared since is counted.
      assert.equal(await redriver.partitions('orders', 'late'), 0);
      await transport.declareSubscription('orders', 'late');
      assert.equal(await redriver.partitions('orders', 'late'), 3);

      // No stream at all: nothing declared, and no stream made by asking.
      assert.equal(await elsewhere.partitions('orders', 'billing'), 0);
      await assert.rejects(elsewhere.redeliver('orders', 'billing', [message]), {
        code: 'TRANSPORT',
        message: /group 'billing' of topic 'orders'/,
      });
      assert.deepEqual((await serverState()).streams, before.streams, 'no stream made');
    } finally {
      await elsewhere.close();
      await redriver.close();
      await transport.close();
    }
  });

  it('refuses bad names and messages as the transport does', async () => {
    const redriver = await getNatsRedriver({ url: natsUrl, application });
    try {
      await assert.rejects(redriver.partitions('', 'billing'), { code: 'VALIDATION', message: /topic/ });
      await assert.rejects(redriver.redeliver('orders', '', []), { code: 'VALIDATION', message: /group/ });
      await assert.rejects(redriver.redeliver('orders', 'billing', [{ id: 1 }] as never), { code: 'VALIDATION' });
    } finally {
      await redriver.close();
    }
  });

  it('closes twice, then refuses work', async () => {
    const redriver = await getNatsRedriver({ url: natsUrl, application });
    await redriver.close();
    await redriver.close();
    await assert.rejects(redriver.partitions('orders', 'billing'), { code: 'STORE_CLOSED' });
  });
});

describe('getNatsRedriver refuses what cannot work, with typed errors', () => {
  it('an unknown option, a missing application or a bad URL is a ValidationError naming the option', async () => {
    const given = { url: natsUrl, application: 'a', partitions: 3 } as never;
    await assert.rejects(getNatsRedriver(given), { code: 'VALIDATION', message: /getNatsRedriver\.partitions/ });
    await assert.rejects(getNatsRedriver({ url: natsUrl } as never), {
      code: 'VALIDATION',
      message: /getNatsRedriver\.application/,
    });
    for (const url of ['not a url', 'http://127.0.0.1:4222']) {
      await assert.rejects(getNatsRedriver({ url, application: 'a' }), {
        code: 'VALIDATION',
        message: /getNatsRedriver\.url/,
      });
    }
  });

  it('an unreachable server is a retryable TransportError naming the address', async () => {
    await assert.rejects(
      getNatsRedriver({ url: 'nats://127.0.0.1:1', application: 'a', connectTimeoutMs: 500 }),
      (error: Failure) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, true);
        assert.match(error.message, /127\.0\.0\.1:1 is unreachable/);
        return true;
      },
    );
  });

  it('close resolves, twice, after the server went away', async (t) => {
    const server = await startPrivateServer({ jetstream: true });
    if ('reason' in server) return t.skip(server.reason);
    try {
      const redriver = await getNatsRedriver({ url: server.url, application: 'a' });
      assert.equal(await redriver.partitions('orders', 'billing'), 0);
      await server.stopServer();
      await settlesWithin(redriver.close(), 5000, 'the first close');
      await settlesWithin(redriver.close(), 5000, 'the second close');
    } finally {
      await server.stop();
    }
  });
});
