import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  createMessage,
  type DeadLetter,
  type DeadLetterStore,
  getInMemoryDeadLetterStore,
  type Message,
} from '@factline/core';
import { messageToJson, settledWithin } from '@factline/core/adapter';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import amqp from 'amqplib';
import { type Forwarder, startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { CLOSE_WAIT_MS } from '../connection.ts';
import {
  amqpUrl,
  rabbitUnavailable,
  readyIn,
  receiveOne,
  removeTopology,
  sendConfirmed,
  testApplication,
} from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const created: RabbitTransport[] = [];
const forwarders: Forwarder[] = [];

/**
 * A transport with `deliveryLimit: 1` reaching the shared broker through a forwarder (so a test can drop its
 * connections), its broker dead letters drained into `deadLetters`.
 */
async function limitedTransport(label: string, deadLetters: DeadLetterStore) {
  const forwarder = await startForwarder(() => Number(new URL(amqpUrl).port || 5672));
  forwarders.push(forwarder);
  const application = testApplication(label);
  const transport = await getRabbitTransport({
    url: amqpUrl.replace(/:\d+(\/|$)/, `:${forwarder.port}$1`),
    application,
    partitions: 1,
    deliveryLimit: 1,
    deadLetters,
    reconnectMinMs: 100,
    reconnectMaxMs: 200,
  });
  created.push(transport);
  await transport.declareSubscription('orders', 'billing');
  return { forwarder, transport, application };
}

/**
 * Hands `message` out twice without an ack (as two processes dying with it), so the broker dead-letters it
 * past `deliveryLimit: 1` into the group's dead-letter queue.
 */
async function failPastTheLimit(transport: RabbitTransport, message: Message): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const subscription = transport.subscribe('orders', 'billing');
    assert.equal((await receiveOne(subscription)).message.id, message.id);
    await subscription.close();
  }
}

/**
 * A transport of its own application on the shared broker, its broker dead letters drained into `deadLetters`
 * (`onError` kept as `<stage>: <message>`), and the group's dead-letter queue.
 */
async function drainingTransport(label: string, deadLetters: DeadLetterStore, prefetch?: number) {
  const errors: string[] = [];
  const application = testApplication(label);
  const transport = await getRabbitTransport({
    url: amqpUrl,
    application,
    partitions: 1,
    deadLetters,
    ...(prefetch ? { prefetch } : {}),
    onError: (error, { stage }) => errors.push(`${stage}: ${(error as Error).message}`),
  });
  created.push(transport);
  await transport.declareSubscription('orders', 'billing');
  return { transport, errors, names: topologyNames(application) };
}

/** A store whose `add` keeps the record, then waits for the test's `release()`; `storing` once one waits. */
function slowStore() {
  const inner = getInMemoryDeadLetterStore();
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const state = { storing: false };
  const store: DeadLetterStore = {
    ...inner,
    async add(record) {
      await inner.add(record);
      state.storing = true;
      await released;
    },
  };
  return { store, inner, state, release };
}

/** Every message left in `queue`, taken off it (as an operator reading it would). */
async function takeAll(queue: string): Promise<string[]> {
  const admin = await amqp.connect(amqpUrl);
  try {
    const channel = await admin.createChannel();
    const taken: string[] = [];
    for (;;) {
      const left = await channel.get(queue, { noAck: true });
      if (!left) return taken;
      taken.push(left.content.toString());
    }
  } finally {
    await admin.close();
  }
}

/** Every record of `message` in `store`, whatever its state. */
async function recordsOf(store: DeadLetterStore, message: Message): Promise<DeadLetter[]> {
  const states = ['dead', 'redriven', 'discarded'] as const;
  const all = await Promise.all(states.map((state) => store.list({ state })));
  return all.flat().filter((record) => record.message.id === message.id);
}

describe('rabbitmq broker dead letters drained into the store once per dead-lettering', { skip }, () => {
  after(async () => {
    await Promise.allSettled(created.map((transport) => transport.close()));
    await Promise.allSettled(forwarders.map((forwarder) => forwarder.close()));
    await removeTopology(created);
  });

  it('a broker dead letter whose ack was lost after its record was stored (and discarded meanwhile) is not stored again', async () => {
    const inner = getInMemoryDeadLetterStore();
    let drop: (() => Promise<void>) | undefined;
    const store: DeadLetterStore = {
      ...inner,
      async add(record) {
        await inner.add(record);
        // Once: the operator discards the record at once, and the connection drops before the ack goes out.
        const dropping = drop;
        drop = undefined;
        if (dropping) {
          assert.equal(await inner.update({ ...record, state: 'discarded' }), true);
          await dropping();
        }
      },
    };
    const { forwarder, transport, application } = await limitedTransport('dead_once', store);
    drop = async () => {
      forwarder.reset();
      await waitUntil(() => !transport.connected(), 'the transport to lose its connection', 10_000);
    };
    const poison = createMessage({ type: 'Placed', key: 'k', data: { poison: true } });
    await transport.publish('orders', [poison]);
    await failPastTheLimit(transport, poison);

    const reader = transport.subscribe('orders', 'billing');
    await waitUntil(() => drop === undefined, 'the dead letter stored and its connection dropped', 15_000);
    await waitUntil(() => transport.connected(), 'the transport to reconnect', 15_000);
    // Behind the dead letter the broker took back (redelivered first), another one: once it is stored, the
    // one before it was handled.
    const later = createMessage({ type: 'Placed', key: 'k', data: { later: true } });
    await sendConfirmed(topologyNames(application).deadQueue('orders', 'billing'), [messageToJson(later)]);
    await waitUntil(async () => (await recordsOf(inner, later)).length === 1, 'the later dead letter stored', 15_000);

    const records = await recordsOf(inner, poison);
    assert.deepEqual(
      records.map((record) => record.state),
      ['discarded'],
      'one record of the dead-lettering, as the operator left it',
    );
    await reader.close();
    await transport.close();
    assert.equal(await readyIn(topologyNames(application).deadQueue('orders', 'billing')), 0, 'both acked');
  });

  it('a redriven broker dead letter that is dead-lettered again gets a record of its own', async () => {
    const store = getInMemoryDeadLetterStore();
    const { transport } = await limitedTransport('dead_again', store);
    const poison = createMessage({ type: 'Placed', key: 'k', data: { poison: true } });
    await transport.publish('orders', [poison]);
    await failPastTheLimit(transport, poison);
    const reader = transport.subscribe('orders', 'billing');
    const [first] = await waitUntil(async () => {
      const found = await recordsOf(store, poison);
      return found.length > 0 && found;
    }, 'the first dead-lettering stored');
    await reader.close();

    // Redriven as consumer.deadLetters.redrive does (sent to the group, then the record marked); it fails again.
    await transport.redeliver('orders', 'billing', [poison]);
    assert.equal(await store.update({ ...(first as DeadLetter), state: 'redriven', redrives: [new Date()] }), true);
    await failPastTheLimit(transport, poison);
    const again = transport.subscribe('orders', 'billing');
    const records = await waitUntil(async () => {
      const found = await recordsOf(store, poison);
      return found.length === 2 && found;
    }, 'the second dead-lettering stored');
    assert.deepEqual(records.map((record) => record.state).sort(), ['dead', 'redriven']);
    await again.close();
    await transport.close();
  });

  for (const how of ['transport.close()', 'a subscription close, then transport.close() at once']) {
    it(`${how} while a dead letter is being stored waits for the store, then acks it before the channel closes`, async () => {
      const { store, inner, state, release } = slowStore();
      const { transport, names } = await drainingTransport('dead_close', store);
      const dead = createMessage({ type: 'Placed', key: 'k', data: {} });
      await sendConfirmed(names.deadQueue('orders', 'billing'), [messageToJson(dead)]);
      const subscription = transport.subscribe('orders', 'billing');
      await waitUntil(() => state.storing, 'the dead letter to be in the store', 15_000);
      if (how !== 'transport.close()') void subscription.close();
      const closing = transport.close();
      // The store is slow: it answers once the close has had time to finish without waiting for it.
      await settledWithin(closing, 300);
      release();
      await settlesWithin(closing, 2 * CLOSE_WAIT_MS, 'transport.close()');
      assert.equal((await recordsOf(inner, dead)).length, 1);
      assert.equal(await readyIn(names.deadQueue('orders', 'billing')), 0, 'its ack reached the broker before close');
    });
  }

  it('transport.close() while the dead-letter store does not answer gives the store up after CLOSE_WAIT_MS, told; the dead letter stays in its queue', async () => {
    const { store, state, release } = slowStore();
    const { transport, errors, names } = await drainingTransport('dead_hung', store);
    await sendConfirmed(names.deadQueue('orders', 'billing'), [
      messageToJson(createMessage({ type: 'Placed', key: 'k', data: {} })),
    ]);
    transport.subscribe('orders', 'billing');
    await waitUntil(() => state.storing, 'the dead letter to be in the store', 15_000);
    const started = Date.now();
    await settlesWithin(transport.close(), 2 * CLOSE_WAIT_MS, 'transport.close()');
    assert.ok(Date.now() - started >= CLOSE_WAIT_MS - 50, `close gave the store up after ${Date.now() - started} ms`);
    assert.ok(
      errors.some((line) => /^dead-letters: .*did not finish within 5000 ms/.test(line)),
      JSON.stringify(errors),
    );
    assert.equal(await readyIn(names.deadQueue('orders', 'billing')), 1, 'not acked: back in its queue');
    release();
  });

  it('transport.close() during the move of unreadable dead letters: each is either moved (and acked) or left in the dead-letter queue, never both', async () => {
    const { transport, errors, names } = await drainingTransport('dead_unreadable', getInMemoryDeadLetterStore(), 20);
    const bodies = Array.from({ length: 60 }, (_, i) => `not json ${i}`);
    await sendConfirmed(names.deadQueue('orders', 'billing'), bodies);
    transport.subscribe('orders', 'billing');
    await waitUntil(() => errors.some((line) => /moved to .* for an operator/.test(line)), 'a first move', 15_000);
    await transport.close();
    const moved = await takeAll(names.unreadableQueue('orders', 'billing'));
    const left = await takeAll(names.deadQueue('orders', 'billing'));
    assert.deepEqual(
      moved.filter((body) => left.includes(body)),
      [],
      `moved and still in the dead-letter queue (${moved.length} moved, ${left.length} left)`,
    );
    assert.deepEqual([...moved, ...left].sort(), [...bodies].sort(), 'every message in one of the two queues');
    assert.equal(errors.filter((line) => /moved to .* for an operator/.test(line)).length, moved.length);
  });
});
