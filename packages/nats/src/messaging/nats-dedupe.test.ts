import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery, type Subscription, type Transport, TransportError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteOutbox, openSqliteDatabase, startSqliteOutboxRelay } from '@factline/sqlite';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('dedupe');
const created: NatsTransport[] = [];

after(async () => {
  await Promise.all(created.map((t) => t.close()));
  if (!skip) await removeStreams([application]);
});

const never = new AbortController().signal;

describe('nats: publishes de-duplicated by the server (Nats-Msg-Id = topic and message id)', { skip }, () => {
  it('a relay retry after an unknown outcome (the publish reached the stream, its answer was lost) is stored once', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 2 });
    created.push(transport);
    await transport.declareSubscription('orders', 'billing');
    // The first publish reaches the server, then fails as a lost PubAck would: the relay cannot know.
    let calls = 0;
    let published = 0;
    const flaky: Transport = {
      ...transport,
      capabilities: transport.capabilities,
      async publish(topic, messages, options) {
        calls += 1;
        await transport.publish(topic, messages, options);
        published += 1;
        if (calls === 1) throw new TransportError('the PubAck was lost (simulated after the publish)');
      },
    };
    const db = openSqliteDatabase(':memory:');
    const outbox = getSqliteOutbox({ database: db });
    const errors: unknown[] = [];
    const relay = startSqliteOutboxRelay(outbox, flaky, { lease: false, pollMs: 20, onError: (e) => errors.push(e) });
    try {
      const inputs = Array.from({ length: 5 }, (_, i) => ({ type: 'OrderPlaced', key: `order-${i}`, data: { i } }));
      db.transaction(() => outbox.enqueue(db, 'orders', inputs))();
      await waitUntil(
        () => published >= 2 && errors.length === 1,
        'the relay to publish again after the failure',
        10_000,
      );
    } finally {
      await relay.stop();
    }
    const subscription = transport.subscribe('orders', 'billing');
    const got = [];
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) got.push(...(await subscription.receive(20, 200, never)));
    assert.equal(got.length, 5, 'each message stored once, though published twice');
    assert.deepEqual(
      got.map((d) => d.deliveryCount),
      [1, 1, 1, 1, 1],
    );
    await Promise.all(got.map((d) => d.ack()));
    await subscription.close();
    db.close();
  });

  it('the same message published twice in the duplicate window reaches a group once', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 2 });
    created.push(transport);
    await transport.declareSubscription('payments', 'ledger');
    const message = createMessage({ type: 'PaymentTaken', key: 'p-1', data: { cents: 100 } });
    await transport.publish('payments', [message]);
    await transport.publish('payments', [message]);
    const subscription = transport.subscribe('payments', 'ledger');
    const got = [];
    const deadline = Date.now() + 1000;
    while (Date.now() < deadline) got.push(...(await subscription.receive(10, 200, never)));
    assert.deepEqual(
      got.map((d) => d.message.id),
      [message.id],
    );
    await Promise.all(got.map((d) => d.ack()));
    await subscription.close();
  });

  it('the same message published to two topics (an event relayed by two relays) reaches each topic once', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 2 });
    created.push(transport);
    await transport.declareSubscription('placed', 'billing');
    await transport.declareSubscription('sagas', 'fulfilment');
    const message = createMessage({ type: 'OrderPlaced', key: 'order-9', data: { n: 9 } });
    await transport.publish('placed', [message]);
    await transport.publish('sagas', [message]);
    await transport.publish('sagas', [message]);
    for (const [topic, group] of [
      ['placed', 'billing'],
      ['sagas', 'fulfilment'],
    ] as const) {
      const subscription = transport.subscribe(topic, group);
      const got = await receiveUntil(subscription, 1, 10_000);
      // A quiet moment after the first: a duplicate would come now.
      got.push(...(await subscription.receive(10, 300, never)));
      assert.deepEqual(
        got.map((d) => d.message.id),
        [message.id],
        `${topic} got the message once`,
      );
      await Promise.all(got.map((d) => d.ack()));
      await subscription.close();
    }
  });
});

/** Receives until `count` deliveries came or the deadline passed. */
async function receiveUntil(subscription: Subscription, count: number, deadlineMs: number): Promise<Delivery[]> {
  const got: Delivery[] = [];
  const deadline = Date.now() + deadlineMs;
  while (got.length < count && Date.now() < deadline) got.push(...(await subscription.receive(10, 200, never)));
  return got;
}
