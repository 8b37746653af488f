import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, isNoSubscriptionError, isStoreClosedError, isValidationError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const created: RedisTransport[] = [];
const { skip, application, client } = await sharedRedis('remove-group', async () => {
  for (const transport of created) await transport.close().catch(() => undefined);
});

const partitions = 2;
const requireSubscription = { requireSubscription: true };
const open = async (app = application) => {
  const transport = await getRedisTransport({ url: redisUrl, application: app, partitions, trimIntervalMs: 100 });
  created.push(transport);
  return transport;
};
const orders = (count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => createMessage({ type: 'OrderPlaced', key: `o-${from + i}`, data: { i } }));
const streamLength = async (transport: RedisTransport, topic: string) => {
  let total = 0;
  for (let p = 0; p < partitions; p++)
    total += Number(await client.sendCommand(['XLEN', transport.keys.stream(topic, p)]));
  return total;
};
const delayedMembers = async (transport: RedisTransport) =>
  ((await client.sendCommand(['ZRANGE', transport.keys.delayed, '0', '-1'])) as string[]).map(
    (member) => JSON.parse(member) as { s: string; o: string },
  );

describe('redis: removing a group no process reads', { skip }, () => {
  it('frees the streams a group that stopped reading held, and its retries waiting; the other group goes on', async () => {
    const transport = await open();
    await transport.declareSubscription('orders', 'billing');
    await transport.declareSubscription('orders', 'shipping');
    // A retry of shipping's waiting in the delayed set, and a message due later for every group.
    const shipping = transport.subscribe('orders', 'shipping');
    await transport.publish('orders', orders(1));
    const signal = new AbortController().signal;
    const [first] = await shipping.receive(1, 5000, signal);
    assert.ok(first);
    await first.release(600_000);
    await transport.publish('orders', [
      createMessage({ type: 'OrderPlaced', key: 'later', data: {}, deliverAt: new Date(Date.now() + 600_000) }),
    ]);
    await waitUntil(
      async () => (await delayedMembers(transport)).length === 2,
      'the retry and the message due later in the delayed set',
      5000,
    );

    // While shipping's subscription is open, here or in another process, the group is not removed.
    await assert.rejects(transport.removeGroup('orders', 'shipping'), /is read by this transport/);
    const other = await open();
    await assert.rejects(other.removeGroup('orders', 'shipping'), (error: Error) => {
      assert.match(error.message, /registered reader|is still held/);
      return true;
    });
    await shipping.close();

    // Billing reads everything; shipping, never read again, holds the streams at its unread entries.
    const billing = transport.subscribe('orders', 'billing');
    await transport.publish('orders', orders(200, 1));
    let handled = 0;
    while (handled < 201) {
      const deliveries = await billing.receive(64, 1000, signal);
      await Promise.all(deliveries.map((d) => d.ack()));
      handled += deliveries.length;
    }
    assert.ok((await streamLength(transport, 'orders')) >= 200, 'shipping holds the entries it has not read');

    assert.equal(await other.removeGroup('orders', 'shipping'), true);
    assert.deepEqual(((await client.sendCommand(['SMEMBERS', transport.keys.groups('orders')])) as string[]).sort(), [
      'billing',
    ]);
    for (let p = 0; p < partitions; p++) {
      const groups = (await client.sendCommand(['XINFO', 'GROUPS', transport.keys.stream('orders', p)])) as unknown[];
      assert.equal(groups.length, 1, `partition ${p} keeps billing's group only`);
    }
    // Billing's reader trims what only shipping held (each stream keeps the last entry billing read).
    await waitUntil(
      async () => (await streamLength(transport, 'orders')) <= partitions,
      'the streams trimmed',
      10_000,
      50,
    );
    // Shipping's retry went with it; the message due later for every group stays for billing.
    assert.deepEqual(
      (await delayedMembers(transport)).map((m) => m.o),
      [''],
    );
    assert.equal(await other.removeGroup('orders', 'shipping'), false, 'a group not declared: nothing removed');

    await transport.publish('orders', orders(1, 500));
    const [next] = await billing.receive(1, 5000, signal);
    assert.deepEqual(next?.message.data, { i: 0 }, 'billing goes on');
    await next?.ack();
    await billing.close();
  });

  it("removes the topic's streams with its last group; publishers stop writing to it", async () => {
    const app = `${application}-last`;
    const transport = await open(app);
    const publisher = await open(app);
    try {
      await transport.declareSubscription('payments', 'ledger');
      await publisher.publish('payments', orders(10));
      assert.equal(await streamLength(transport, 'payments'), 10);

      assert.equal(await transport.removeGroup('payments', 'ledger'), true);
      assert.equal(
        Number(
          await client.sendCommand([
            'EXISTS',
            transport.keys.stream('payments', 0),
            transport.keys.stream('payments', 1),
          ]),
        ),
        0,
      );
      // This transport knows at once; another that saw the group stops writing once it looks again (within 5 s).
      await assert.rejects(transport.publish('payments', orders(1), requireSubscription), isNoSubscriptionError);
      await waitUntil(
        () =>
          publisher.publish('payments', orders(1), requireSubscription).then(
            () => false,
            (error: unknown) => isNoSubscriptionError(error),
          ),
        'the other transport to find the topic without groups',
        10_000,
        250,
      );
      const left = await streamLength(transport, 'payments');
      await publisher.publish('payments', orders(3));
      assert.equal(await streamLength(transport, 'payments'), left, 'nothing more is written');
    } finally {
      await client.sendCommand([
        'DEL',
        `${app}:partitions`,
        `${app}:groups:payments`,
        ...[0, 1].map((p) => transport.keys.stream('payments', p)),
      ]);
    }
  });

  it('is refused while a partition lease of the group is held, or a registration has not ended', async () => {
    const transport = await open();
    await transport.declareSubscription('refunds', 'audit');
    await client.sendCommand(['SET', transport.keys.lease('refunds', 'audit', 1), 'a-dead-process', 'PX', '60000']);
    await assert.rejects(transport.removeGroup('refunds', 'audit'), /partition 1 of 'refunds' is still held/);
    await client.sendCommand(['DEL', transport.keys.lease('refunds', 'audit', 1)]);
    await client.sendCommand(['ZADD', transport.keys.readers('refunds', 'audit'), String(Date.now() + 60_000), 'gone']);
    await assert.rejects(transport.removeGroup('refunds', 'audit'), /1 registered reader/);
    // A registration that ended (its process died a lease time ago) does not hold the group.
    await client.sendCommand(['ZADD', transport.keys.readers('refunds', 'audit'), String(Date.now() - 1000), 'gone']);
    assert.equal(await transport.removeGroup('refunds', 'audit'), true);
    assert.equal(Number(await client.sendCommand(['EXISTS', transport.keys.readers('refunds', 'audit')])), 0);
  });

  it("is refused by a transport given another partition count than the topic's, changing nothing", async () => {
    const app = `${application}-count`;
    const eight = await getRedisTransport({ url: redisUrl, application: app, partitions: 8 });
    created.push(eight);
    const four = await open(app);
    try {
      await eight.declareSubscription('orders', 'g');
      await eight.publish('orders', orders(16));
      await assert.rejects(four.removeGroup('orders', 'g'), (error: Error & { retryable?: boolean }) => {
        assert.match(error.message, /topic 'orders' has 8 partitions .* given partitions: 2/);
        assert.equal(error.retryable, false);
        return true;
      });
      for (const p of [0, 5]) {
        const groups = (await client.sendCommand(['XINFO', 'GROUPS', eight.keys.stream('orders', p)])) as unknown[];
        assert.equal(groups.length, 1, `partition ${p} keeps its group`);
      }
      assert.equal(Number(await client.sendCommand(['SISMEMBER', eight.keys.groups('orders'), 'g'])), 1);
      assert.equal(await eight.removeGroup('orders', 'g'), true);
    } finally {
      await client.sendCommand(['DEL', `${app}:partitions`]);
    }
  });

  it('leaves no stream behind when due messages of the topic were being moved as its last group went', async () => {
    const app = `${application}-due`;
    const transport = await open(app);
    await transport.declareSubscription('invoices', 'billing');
    // Due now: any process's mover appends them to their streams at its next run (every 250 ms).
    await transport.publish(
      'invoices',
      Array.from({ length: 2000 }, (_, i) =>
        createMessage({ type: 'Due', key: `k-${i}`, data: {}, deliverAt: new Date(Date.now() + 200) }),
      ),
    );
    // Removed while the movers are moving them (a run moves a page of them).
    await waitUntil(
      async () => Number(await client.sendCommand(['ZCARD', transport.keys.delayed])) < 2000,
      'the movers moving the due messages',
      5000,
      1,
    );
    assert.equal(await transport.removeGroup('invoices', 'billing'), true);
    const streams = [0, 1].map((p) => transport.keys.stream('invoices', p));
    // The movers keep running: nothing of the topic comes back.
    const until = Date.now() + 600;
    while (Date.now() < until) {
      assert.equal(Number(await client.sendCommand(['EXISTS', ...streams])), 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(await delayedMembers(transport), []);
    await client.sendCommand(['DEL', `${app}:partitions`]);
  });

  it('checks its arguments, and is refused by a closed transport', async () => {
    const transport = await open();
    await assert.rejects(transport.removeGroup('', 'audit'), isValidationError);
    await assert.rejects(transport.removeGroup('refunds', 42 as unknown as string), isValidationError);
    await transport.close();
    await assert.rejects(transport.removeGroup('refunds', 'audit'), isStoreClosedError);
  });
});
