import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { ValidationError } from '../errors/index.ts';
import { NonRetryableError } from '../errors/index.ts';
import { createConsumer } from '../messaging/consumer.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createMessage, type Message, messageFromEvent } from '../messaging/message.ts';
import { startOutboxRelay } from '../messaging/outbox-relay.ts';
import { createProjectionRunner } from '../projections/runner.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { createInMemoryOutbox } from '../testing/in-memory-outbox.ts';
import { getInMemoryProjectionBackend } from '../testing/projections/in-memory-backend.ts';
import { Garbled, ItemReserved, OrderPlaced } from '../testing/schema-store/fixtures.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { defineMessage } from './define.ts';
import { encodeMessages } from './encode-messages.ts';
import { createSchemaRegistry } from './registry.ts';
import { withSchemas } from './schema-store.ts';

const v1 = { orderId: 'o-1', total: 30 };
const v3 = { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } };
const ShipOrder = defineMessage({
  type: 'ShipOrder',
  version: 2,
  schema: z.object({ orderId: z.string(), express: z.boolean() }),
  upcasters: { 1: (d: { orderId: string }) => ({ ...d, express: false }) },
});
const schemas = createSchemaRegistry([OrderPlaced, Garbled, ItemReserved, ShipOrder]);
const noSleep = async () => {};

/** A consumer on `transport` recording what its handler gets; `fail` decides whether a try throws. */
function recordingConsumer(
  transport: ReturnType<typeof getInMemoryTransport>,
  fail: (m: Message) => boolean = () => false,
) {
  const handled: Message[] = [];
  const errors: unknown[] = [];
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    schemas,
    maxRetries: 2,
    retryDelay: 0,
    sleep: noSleep,
    onError: (error) => errors.push(error),
    handler: (message) => {
      if (fail(message)) throw new NonRetryableError('not now');
      handled.push(message);
    },
  });
  return { consumer, handled, errors };
}

describe('outbox messages are validated and stamped', () => {
  it('outbox message → relay → consumer: enqueued stamped at v2; an old v1 message is handled as v2', async () => {
    const outbox = createInMemoryOutbox({ schemas });
    const transport = getInMemoryTransport();
    const { consumer, handled } = recordingConsumer(transport);
    await consumer.start();
    const relay = startOutboxRelay(outbox, transport, { pollMs: 5, leaseCheckMs: 20 });
    try {
      const [built] = outbox.enqueue('orders', [
        { type: 'ShipOrder', data: { orderId: 'o-1', express: true, extra: 1 } },
      ]);
      assert.equal(built?.headers['factline-schema-version'], '2');
      assert.deepEqual(built?.data, { orderId: 'o-1', express: true }, 'the schema output');
      // What an older producer (v1 schema) published.
      const old = createMessage({
        type: 'ShipOrder',
        data: { orderId: 'o-2' },
        headers: { 'factline-schema-version': '1' },
      });
      await transport.publish('orders', [old]);
      await waitUntil(() => handled.length === 2, 'both messages handled');
      const byOrder = new Map(handled.map((m) => [(m.data as { orderId: string }).orderId, m.data]));
      assert.deepEqual(byOrder.get('o-1'), { orderId: 'o-1', express: true });
      assert.deepEqual(byOrder.get('o-2'), { orderId: 'o-2', express: false });
    } finally {
      await relay.stop();
      await consumer.stop();
    }
  });

  it('an invalid enqueue is one ValidationError naming every issue; nothing is enqueued', () => {
    const outbox = createInMemoryOutbox({ schemas });
    assert.throws(
      () =>
        outbox.enqueue('orders', [
          { type: 'ShipOrder', data: { orderId: 1, express: true } },
          { type: 'ShipOrder', data: { orderId: 'o', express: true }, headers: { 'factline-schema-version': '1' } },
        ]),
      (error: ValidationError) =>
        error.issues.map((i) => i.path).join() ===
        'messages[0].data.orderId,messages[1].headers.factline-schema-version',
    );
    assert.equal(outbox.pending(), 0);
  });

  it('an asynchronous validator: refused by a synchronous enqueue, awaited by encodeMessages', async () => {
    const outbox = createInMemoryOutbox({ schemas });
    assert.throws(
      () =>
        outbox.enqueue('orders', [
          { type: 'ItemReserved', data: { sku: 'SKU-1' }, headers: { 'factline-stream-id': 'i-1' } },
        ]),
      /asynchronous validator/,
    );
    const [message] = await encodeMessages(schemas, [
      { type: 'Reserve', data: {} },
      { type: 'ShipOrder', data: { orderId: 'o', express: false } },
    ]);
    assert.equal(message?.headers['factline-schema-version'], undefined, 'a type not defined passes as it is');
    await assert.rejects(
      Promise.resolve(
        encodeMessages(schemas, [
          { type: 'ItemReserved', data: { sku: 'nope' }, headers: { 'factline-stream-id': 'i-1' } },
        ]),
      ),
      (error: ValidationError) => error.issues[0]?.path === 'messages[0].data.sku',
    );
  });
});

describe('messages encoded: the schema output is checked as JSON', () => {
  it('a schema whose output JSON cannot carry (a coerced bigint) is a ValidationError naming the path; nothing enqueued', async () => {
    const coercing = createSchemaRegistry([
      defineMessage({ type: 'Refund', version: 1, schema: z.object({ amount: z.coerce.bigint() }) }),
    ]);
    await assert.rejects(
      async () => encodeMessages(coercing, [{ type: 'Refund', data: { amount: '12' } }]),
      (error: ValidationError) => error.issues.map((i) => i.path).join() === 'messages[0].data.amount',
    );
    const outbox = createInMemoryOutbox({ schemas: coercing });
    assert.throws(
      () => outbox.enqueue('refunds', [{ type: 'Refund', data: { amount: '12' } }]),
      (error: ValidationError) => error.issues[0]?.path === 'messages[0].data.amount',
    );
    assert.equal(outbox.pending(), 0);
  });
});

describe('messages read upcast', () => {
  it('event relay → message → consumer: a v1 event is published and handled as v3', async () => {
    const raw = getInMemoryEventStore();
    await raw.append('order-1', [{ type: 'OrderPlaced', data: v1 }]);
    const transport = getInMemoryTransport();
    const { consumer, handled } = recordingConsumer(transport);
    await consumer.start();
    const relay = defineEventRelay({ name: 'relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
    const runner = createProjectionRunner(getInMemoryProjectionBackend(withSchemas(raw, schemas)), [relay], {
      idleCheckMs: 5,
    });
    await runner.start();
    try {
      await waitUntil(() => handled.length === 1, 'the relayed event handled');
      assert.deepEqual(handled[0]?.data, v3);
      assert.equal(handled[0]?.headers['factline-schema-version'], '3', 'published with its current version');
    } finally {
      await runner.stop();
      await consumer.stop();
    }
  });

  it('a message sent at v1 by an older producer is handled as v2', async () => {
    const transport = getInMemoryTransport();
    const { consumer, handled } = recordingConsumer(transport);
    await consumer.start();
    try {
      const old = createMessage({
        type: 'ShipOrder',
        data: { orderId: 'o-1' },
        headers: { 'factline-schema-version': '1' },
      });
      await transport.publish('orders', [old]);
      await waitUntil(() => handled.length === 1, 'the old message handled');
      assert.deepEqual(handled[0]?.data, { orderId: 'o-1', express: false });
      assert.equal(handled[0]?.headers['factline-schema-version'], '2');
    } finally {
      await consumer.stop();
    }
  });

  it('a message whose upcaster fails is a handler failure: retried by the policy, then dead-lettered with the error', async () => {
    const transport = getInMemoryTransport();
    const { consumer, handled, errors } = recordingConsumer(transport);
    await consumer.start();
    try {
      const event = {
        ...messageFromEvent({
          id: 'e-1',
          type: 'Garbled',
          data: { text: 'x' },
          metadata: {},
          streamId: 'g-1',
          streamVersion: 1,
          position: 1,
          recordedAt: new Date(),
          schemaVersion: 1,
        }),
      };
      await transport.publish('orders', [event]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the message dead-lettered');
      assert.equal(consumer.stats().retries, 2);
      assert.equal(errors.length, 3);
      assert.equal(handled.length, 0, 'the handler never got it');
      const [dead] = await consumer.deadLetters.list();
      assert.equal(dead?.error.type, 'UpcastError');
      assert.match(dead?.error.message ?? '', /'Garbled' from version 1 to 2 failed: cannot read version 1/);
      assert.deepEqual(dead?.message.data, { text: 'x' }, 'kept as received');
      assert.equal(consumer.stats().state, 'running', 'the consumer loop goes on');
    } finally {
      await consumer.stop();
    }
  });

  it('a redriven dead letter goes through the decoding again: handled as v3', async () => {
    const transport = getInMemoryTransport();
    let failing = true;
    const { consumer, handled } = recordingConsumer(transport, () => failing);
    await consumer.start();
    try {
      const recorded = {
        id: 'e-1',
        type: 'OrderPlaced',
        data: v1,
        metadata: {},
        streamId: 'order-1',
        streamVersion: 1,
        position: 1,
        recordedAt: new Date(),
        schemaVersion: 1,
      };
      await transport.publish('orders', [messageFromEvent(recorded)]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the message dead-lettered');
      const [dead] = await consumer.deadLetters.list();
      assert.equal(dead?.message.headers['factline-schema-version'], '1', 'dead-lettered as received');
      failing = false;
      assert.equal(await consumer.deadLetters.redrive(dead?.id as string), 1);
      await waitUntil(() => handled.length === 1, 'the redriven message handled');
      assert.deepEqual(handled[0]?.data, v3);
    } finally {
      await consumer.stop();
    }
  });
});
