import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  createMessage,
  type DeadLetter,
  type DeadLetterStore,
  getInMemoryDeadLetterStore,
  type Message,
} from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import { type Forwarder, startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
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
});
