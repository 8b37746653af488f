import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery, type Message } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import amqp from 'amqplib';
import { closeConnectionFromServer } from '../fixtures/close-connection.ts';
import { amqpUrl, rabbitUnavailable, readyIn, removeTopology, testApplication } from '../fixtures/server.ts';
import { partitionOf, topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';
import { getRabbitRedriver, type RabbitRedriver } from './redriver.ts';

const skip = await rabbitUnavailable();
const application = testApplication('redrive');
const names = topologyNames(application);
const created: RabbitTransport[] = [];
const redrivers: RabbitRedriver[] = [];
const signal = new AbortController().signal;

after(async () => {
  // Also after a failed case: an open connection would keep this file running.
  await Promise.allSettled([...created, ...redrivers].map((opened) => opened.close()));
  if (!skip) await removeTopology(created);
});

/** The application's transport, with settings no operator's tool knows: 3 partitions, a delivery limit of 9. */
const openTransport = async () => {
  const transport = await getRabbitTransport({ url: amqpUrl, application, partitions: 3, deliveryLimit: 9 });
  created.push(transport);
  return transport;
};
const openRedriver = async () => {
  const redriver = await getRabbitRedriver({ url: amqpUrl, application });
  redrivers.push(redriver);
  return redriver;
};
/** Deletes `queue` on a connection of its own, as an operator would. */
const deleteQueue = async (queue: string) => {
  const admin = await amqp.connect(amqpUrl);
  try {
    await (await admin.createChannel()).deleteQueue(queue);
  } finally {
    await admin.close();
  }
};
const queuesOf = (group: string) => [0, 1, 2].map((p) => names.groupQueue('orders', group, p));

describe('rabbitmq: the redriver of an operator’s tool', { skip }, () => {
  it('counts the partitions the application declared and redelivers into one group only, declaring nothing', async () => {
    const transport = await openTransport();
    const redriver = await openRedriver();
    try {
      await transport.declareSubscription('orders', 'billing');
      await transport.declareSubscription('orders', 'shipping');
      assert.equal(await redriver.partitions('orders', 'billing'), 3);

      const keys = ['order-1', 'order-2', 'order-3', 'order-4'];
      const [first, second] = keys.filter(
        (key, i) => keys.findIndex((k) => partitionOf(k, 3) === partitionOf(key, 3)) === i,
      );
      assert.ok(first && second, 'two keys on different partitions');
      const messages: Message[] = [first, second].map((key) =>
        createMessage({ type: 'OrderPlaced', key, data: { orderId: key, total: key.length } }),
      );
      await redriver.redeliver('orders', 'billing', messages);

      // Each in the partition queue its key maps to among the 3, the other groups' queues untouched.
      for (const [p, queue] of queuesOf('billing').entries()) {
        const expected = messages.filter((m) => partitionOf(m.key, 3) === p).length;
        assert.equal(await readyIn(queue), expected, queue);
      }
      for (const queue of queuesOf('shipping')) assert.equal(await readyIn(queue), 0, queue);
      assert.equal(await readyIn(names.groupQueue('orders', 'billing', 3)), 'missing', 'no fourth partition');

      const subscription = transport.subscribe('orders', 'billing');
      const got: Delivery[] = [];
      await waitUntil(async () => {
        got.push(...(await subscription.receive(2 - got.length, 200, signal)));
        return got.length === 2;
      }, 'both redelivered messages received by billing');
      const received = got.map(({ message }) => ({ id: message.id, type: message.type, data: message.data }));
      const sent = messages.map((message) => ({ id: message.id, type: message.type, data: message.data }));
      const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
      assert.deepEqual(received.sort(byId), sent.sort(byId));
      await Promise.all(got.map((delivery) => delivery.ack()));
      await subscription.close();
      for (const queue of queuesOf('shipping')) assert.equal(await readyIn(queue), 0, `${queue}, afterwards`);
    } finally {
      await redriver.close();
      await transport.close();
    }
  });

  it('refuses a group not declared, sending nothing and creating nothing, and goes on working', async () => {
    const transport = await openTransport();
    const redriver = await openRedriver();
    try {
      await transport.declareSubscription('orders', 'billing');
      assert.equal(await redriver.partitions('orders', 'nobody'), 0);
      const message = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      await assert.rejects(
        redriver.redeliver('orders', 'nobody', [message]),
        (error: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(error.code, 'TRANSPORT');
          assert.equal(error.retryable, false);
          assert.match(error.message, /'nobody'/);
          assert.match(error.message, /'orders'/);
          return true;
        },
      );
      assert.equal(await readyIn(names.groupQueue('orders', 'nobody', 0)), 'missing');
      assert.equal(await readyIn(names.deadQueue('orders', 'nobody')), 'missing');
      // The 404s closed the redriver's counting channels only: a declared group still counts and receives.
      assert.equal(await redriver.partitions('orders', 'billing'), 3);
      await redriver.redeliver('orders', 'billing', [message]);
      assert.equal(await readyIn(names.groupQueue('orders', 'billing', partitionOf('order-1', 3))), 1);
    } finally {
      await redriver.close();
      await transport.close();
    }
  });

  it('after a partition count lowered as documented, counts the recorded partitions, not the surplus queues left', async () => {
    const changed = testApplication('recount');
    const changedNames = topologyNames(changed);
    const eight = await getRabbitTransport({ url: amqpUrl, application: changed, partitions: 8 });
    created.push(eight);
    await eight.declareSubscription('orders', 'billing');
    await eight.close();
    // The documented change: every process stopped, the record deleted, all started with the new count.
    await deleteQueue(changedNames.partitionCount('orders'));
    const four = await getRabbitTransport({ url: amqpUrl, application: changed, partitions: 4 });
    created.push(four);
    const redriver = await getRabbitRedriver({ url: amqpUrl, application: changed });
    redrivers.push(redriver);
    try {
      await four.declareSubscription('orders', 'billing');
      assert.equal(await redriver.partitions('orders', 'billing'), 4, 'the recorded count (queues .4 to .7 are left)');
      let key = 'k0';
      for (let i = 1; partitionOf(key, 8) < 4; i++) key = `k${i}`;
      await redriver.redeliver('orders', 'billing', [createMessage({ type: 'OrderPlaced', key, data: {} })]);
      assert.equal(await readyIn(changedNames.groupQueue('orders', 'billing', partitionOf(key, 4))), 1);
      assert.equal(await readyIn(changedNames.groupQueue('orders', 'billing', partitionOf(key, 8))), 0);
    } finally {
      await redriver.close();
      await four.close();
      for (let p = 4; p < 8; p++) await deleteQueue(changedNames.groupQueue('orders', 'billing', p));
    }
  });

  it('refuses bad names and messages as the transport does, before asking the broker', async () => {
    const redriver = await openRedriver();
    try {
      await assert.rejects(redriver.partitions('', 'billing'), { code: 'VALIDATION', message: /topic/ });
      await assert.rejects(redriver.redeliver('orders', 'bad\ngroup', []), { code: 'VALIDATION', message: /group/ });
      await assert.rejects(redriver.redeliver('orders', 'billing', [{ id: 'x' }] as never), { code: 'VALIDATION' });
      await assert.rejects(redriver.partitions('orders', 'g'.repeat(250)), {
        code: 'TRANSPORT',
        message: /255-byte/,
      });
    } finally {
      await redriver.close();
    }
  });

  it('a connection closed by the server: a redelivery rejects (retryable), close still resolves', async (t) => {
    const transport = await openTransport();
    const redriver = await openRedriver();
    try {
      await transport.declareSubscription('orders', 'billing');
      assert.equal(await redriver.partitions('orders', 'billing'), 3);
      // The redriver's connection is the only one named after this application's redrives.
      if (!(await closeConnectionFromServer(`factline redrive ${application} `))) {
        t.skip('rabbitmqctl cannot close the connection here');
        return;
      }
      const message = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      await waitUntil(
        () =>
          redriver.redeliver('orders', 'billing', [message]).then(
            () => false,
            (error: Error & { code?: string; retryable?: boolean }) => error.code === 'TRANSPORT' && error.retryable,
          ),
        'a redelivery refused once the connection is gone',
      );
      await redriver.close();
      await redriver.close();
    } finally {
      await redriver.close();
      await transport.close();
    }
  });
});

describe('getRabbitRedriver refuses what cannot work, with typed errors', () => {
  it('an unknown option, a missing one, a bad application: a ValidationError naming it', async () => {
    const given = { url: amqpUrl, application: 'a', partitions: 3 } as never;
    await assert.rejects(getRabbitRedriver(given), { code: 'VALIDATION', message: /getRabbitRedriver\.partitions/ });
    await assert.rejects(getRabbitRedriver({ url: amqpUrl } as never), {
      code: 'VALIDATION',
      message: /getRabbitRedriver\.application.*required/,
    });
    await assert.rejects(getRabbitRedriver({ url: amqpUrl, application: 'has space' }), {
      code: 'VALIDATION',
      message: /getRabbitRedriver\.application/,
    });
  });

  it('a URL that is no URL, or not amqp(s): a ValidationError naming the option', async () => {
    for (const url of ['not a url', 'http://127.0.0.1:5672', 'amqp://']) {
      await assert.rejects(getRabbitRedriver({ url, application: 'a' }), {
        code: 'VALIDATION',
        message: /getRabbitRedriver\.url/,
      });
    }
  });

  it('an unreachable broker: a retryable TransportError naming the address, within connectTimeoutMs', async () => {
    const started = Date.now();
    await assert.rejects(
      getRabbitRedriver({ url: 'amqp://guest:guest@127.0.0.1:1', application: 'a', connectTimeoutMs: 500 }),
      (error: Error & { code?: string; retryable?: boolean }) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, true);
        assert.match(error.message, /unreachable/);
        assert.match(error.message, /127\.0\.0\.1:1/);
        assert.doesNotMatch(error.message, /guest:guest/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000, 'gave up long before the default timeout');
  });

  it('close() resolves twice in a row; a closed redriver refuses work', { skip }, async () => {
    const redriver = await openRedriver();
    await redriver.close();
    await redriver.close();
    await assert.rejects(redriver.partitions('orders', 'billing'), { code: 'STORE_CLOSED' });
    await assert.rejects(redriver.redeliver('orders', 'billing', []), { code: 'STORE_CLOSED' });
  });
});
