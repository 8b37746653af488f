import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { handleCommand } from '../commands/handle-command.ts';
import { NonRetryableError } from '../errors/index.ts';
import { createEventBus } from '../messaging/event-bus.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import type { Message } from '../messaging/message.ts';
import { createProjectionRunner } from '../projections/runner.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend } from '../testing/projections/in-memory-backend.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { registerTestSdk, type TestSdk } from './fixtures/otel-sdk.ts';
import { spanContextOf } from './trace-context.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());
beforeEach(() => sdk.spans.reset());

const orderDecider = {
  initialState: () => ({ placed: false }),
  decide: (command: { order: string }) => [{ type: 'OrderPlaced', data: { order: command.order } }],
  evolve: () => ({ placed: true }),
};

/** The order flow: command → append → event relay → three groups (payment fails once, notification dead-letters). */
async function runOrderFlow(notificationRelation: 'link' | 'parent' = 'link') {
  const store = getInMemoryEventStore();
  const transport = getInMemoryTransport();
  const bus = createEventBus({ transport, topic: 'orders' });
  let paymentTries = 0;
  const followUps: Message[] = [];
  const quick = { pollMs: 5, maxRetries: 2, retryDelay: 0 };
  bus.subscribe(
    'inventory',
    ['OrderPlaced'],
    async () => {
      followUps.push(await bus.publish('StockReserved', { sku: 'a' }));
    },
    quick,
  );
  bus.subscribe(
    'payment',
    ['OrderPlaced'],
    () => {
      paymentTries += 1;
      if (paymentTries === 1) throw new Error('card service busy');
    },
    quick,
  );
  const notification = bus.subscribe(
    'notification',
    ['OrderPlaced'],
    () => {
      throw new NonRetryableError('no address');
    },
    { ...quick, producerSpan: notificationRelation },
  );
  await bus.start();
  const runner = createProjectionRunner(getInMemoryProjectionBackend(store), [
    defineEventRelay({ name: 'order-relay', transport, topic: 'orders', handles: ['OrderPlaced'] }),
  ]);
  await runner.start();
  try {
    const result = await handleCommand(store, 'order-1', { order: '1' }, orderDecider, {
      metadata: { correlationId: 'checkout-1', causationId: 'request-1' },
    });
    await waitUntil(
      () => notification.stats().deadLettered === 1 && paymentTries === 2 && followUps.length === 1,
      'every group settled the order',
    );
    // Spans end after their delivery settled: wait for the last process span.
    await waitUntil(
      () => sdk.spans.getFinishedSpans().filter((s) => s.name === 'process orders').length === 6,
      'six process spans ended (the order and the follow-up, per group)',
    );
    return { result, followUps };
  } finally {
    await runner.stop();
    await bus.stop();
  }
}

const named = (spans: readonly ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const one = (spans: readonly ReadableSpan[], name: string) => {
  const found = named(spans, name);
  assert.equal(found.length, 1, `one span '${name}', got ${found.length}`);
  return found[0] as ReadableSpan;
};
const group = (spans: readonly ReadableSpan[], name: string) =>
  spans.find(
    (s) =>
      s.name === 'process orders' &&
      s.attributes['messaging.consumer.group.name'] === name &&
      s.attributes['factline.message.type'] === 'OrderPlaced',
  ) as ReadableSpan;

describe('OpenTelemetry spans', () => {
  it('connects one order across the command, the append, the relay and three consumer groups by links', async () => {
    const { result } = await runOrderFlow();
    const spans = sdk.spans.getFinishedSpans();
    const command = one(spans, 'command order');
    const append = one(spans, 'append order');
    assert.equal(append.parentSpanContext?.spanId, command.spanContext().spanId, 'append is inside the command');
    assert.equal(command.attributes['factline.attempt'], 1);
    assert.equal(append.attributes['factline.stream.id'], 'order-1');
    assert.equal(append.attributes['factline.stream.version'], 1);
    assert.equal(append.attributes['db.system.name'], 'in-memory');

    // The stored event names the append span as its producer.
    const event = result.newEvents[0];
    assert.equal(event?.metadata.traceparent, `00-${append.spanContext().traceId}-${append.spanContext().spanId}-01`);

    const batch = one(spans, 'projection order-relay');
    assert.deepEqual(
      batch.links.map((l) => l.context.spanId),
      [append.spanContext().spanId],
    );
    const send = named(spans, 'send orders').find((s) => s.parentSpanContext?.spanId === batch.spanContext().spanId);
    assert.ok(send, 'the relay sends inside its batch span');
    assert.equal(send.attributes['messaging.system'], 'in-memory');
    assert.equal(send.attributes['messaging.operation.type'], 'send');
    assert.deepEqual(
      send.links.map((l) => l.context.spanId),
      [append.spanContext().spanId],
    );

    for (const name of ['inventory', 'payment']) {
      const process = group(spans, name);
      assert.ok(process, `a process span for ${name}`);
      assert.deepEqual(
        process.links.map((l) => l.context.spanId),
        [append.spanContext().spanId],
        `${name} links to the append`,
      );
      assert.notEqual(process.spanContext().traceId, append.spanContext().traceId, 'a trace per hop, by default');
      assert.equal(process.attributes['messaging.operation.type'], 'process');
      assert.equal(process.attributes['messaging.destination.name'], 'orders');
      assert.equal(process.attributes['messaging.message.id'], event?.id);
      assert.equal(process.attributes['factline.stream.id'], 'order-1');
      assert.equal(process.attributes['factline.position'], event?.position);
    }
    // Correlation and causation ids on every span of the operation.
    for (const span of [command, append, batch, send, group(spans, 'inventory'), group(spans, 'payment')]) {
      assert.equal(span.attributes['factline.correlation_id'], 'checkout-1', span.name);
    }
    for (const span of [command, append, group(spans, 'payment')]) {
      assert.equal(span.attributes['factline.causation_id'], 'request-1', span.name);
    }
  });

  it('shows the retried message with its attempts and the dead-lettered one with its failure', async () => {
    await runOrderFlow();
    const spans = sdk.spans.getFinishedSpans();
    const payment = group(spans, 'payment');
    assert.equal(payment.attributes['factline.attempt'], 2);
    assert.equal(payment.attributes['factline.settle'], 'ack');
    const failed = payment.events.filter((e) => e.name === 'factline.attempt_failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.attributes?.['factline.retry.decision'], 'retry');
    assert.equal(failed[0]?.attributes?.['exception.message'], 'card service busy');

    const notification = group(spans, 'notification');
    assert.equal(notification.attributes['factline.settle'], 'dead-letter');
    assert.equal(notification.attributes['factline.attempt'], 1);
    assert.equal(notification.status.code, 2, 'status error');
    assert.equal(notification.status.message, 'no address');
    assert.equal(notification.attributes['factline.correlation_id'], 'checkout-1');
  });

  it('makes what a handler publishes a child of its process span, and its consumers link to it', async () => {
    const { followUps } = await runOrderFlow();
    const spans = sdk.spans.getFinishedSpans();
    const inventory = group(spans, 'inventory');
    const send = named(spans, 'send orders').find(
      (s) => s.parentSpanContext?.spanId === inventory.spanContext().spanId,
    );
    assert.ok(send, 'the handler’s publish is a child of its process span');
    const followUp = followUps[0] as Message;
    assert.equal(followUp.metadata.traceparent?.split('-')[2], send.spanContext().spanId);
    assert.equal(followUp.metadata.correlationId, 'checkout-1');
    // Each group gets the follow-up too (other types are acknowledged without the handler): still linked.
    const processes = named(spans, 'process orders').filter(
      (s) => s.attributes['messaging.message.id'] === followUp.id,
    );
    assert.ok(processes.length >= 1);
    for (const process of processes) assert.equal(process.links[0]?.context.spanId, send.spanContext().spanId);
  });

  it("makes the process span the producer's child with producerSpan: 'parent'", async () => {
    await runOrderFlow('parent');
    const spans = sdk.spans.getFinishedSpans();
    const append = one(spans, 'append order');
    const notification = group(spans, 'notification');
    assert.equal(notification.parentSpanContext?.spanId, append.spanContext().spanId);
    assert.equal(notification.spanContext().traceId, append.spanContext().traceId);
    assert.equal(notification.links.length, 0);
  });
});

describe('batch spans', () => {
  it('carry the causation id every item of the batch shares, as the correlation id', async () => {
    const store = getInMemoryEventStore();
    const transport = getInMemoryTransport();
    await transport.declareSubscription('batch-orders', 'shipping');
    const metadata = { correlationId: 'checkout-2', causationId: 'request-2' };
    await store.append('order-2', [
      { type: 'OrderPlaced', data: {}, metadata },
      { type: 'OrderPlaced', data: {}, metadata },
    ]);
    const runner = createProjectionRunner(getInMemoryProjectionBackend(store), [
      defineEventRelay({ name: 'batch-relay', transport, topic: 'batch-orders', handles: ['OrderPlaced'] }),
    ]);
    await runner.start();
    try {
      await waitUntil(() => runner.status('batch-relay').checkpoint === 2, 'both events relayed');
      await waitUntil(() => named(sdk.spans.getFinishedSpans(), 'projection batch-relay').length > 0, 'the batch span');
    } finally {
      await runner.stop();
    }
    const spans = sdk.spans.getFinishedSpans();
    const batch = one(spans, 'projection batch-relay');
    const send = one(spans, 'send batch-orders');
    for (const span of [batch, send]) {
      assert.equal(span.attributes['messaging.batch.message_count'], 2, span.name);
      assert.equal(span.attributes['factline.correlation_id'], 'checkout-2', span.name);
      assert.equal(span.attributes['factline.causation_id'], 'request-2', span.name);
    }
  });
});

describe('an operation started outside any handler', () => {
  it('names its correlation id, the first event’s own id, on the command and append spans', async () => {
    const store = getInMemoryEventStore();
    const result = await handleCommand(store, 'order-3', { order: '3' }, orderDecider);
    const [event] = result.newEvents;
    assert.equal(event?.metadata.correlationId, event?.id, 'the event starts the operation');
    const spans = sdk.spans.getFinishedSpans();
    for (const span of [one(spans, 'command order'), one(spans, 'append order')]) {
      assert.equal(span.attributes['factline.correlation_id'], event?.id, span.name);
    }
  });
});

describe('an append retried under tracing', () => {
  it('is taken as the same append: its own span’s traceparent makes it no other event', async () => {
    const store = getInMemoryEventStore();
    const placed = { id: 'evt-retried-1', type: 'OrderPlaced', data: { order: 'o-1' } };
    const events = [{ ...placed, metadata: { tenant: 't' } }];
    const first = await store.append('order-retried', events, { expectedVersion: 'no-stream' });
    // The caller never saw the answer (a timeout) and sends the same append again, in a span of its own.
    const again = await store.append('order-retried', events, { expectedVersion: 'no-stream' });
    assert.equal(again.position, first.position);
    assert.equal(again.version, 1);
    const appendSpans = sdk.spans.getFinishedSpans().filter((s) => s.name.includes('append'));
    assert.ok(appendSpans.length >= 2, 'each append ran in a span of its own');
    const { events: stored } = await store.readStream('order-retried');
    assert.equal(stored.length, 1, 'stored once');
    assert.match(String(stored[0]?.metadata.traceparent), /^00-/, 'the first attempt’s trace context kept');
    // Other content under the same id is still refused.
    await assert.rejects(
      store.append('order-retried', [{ ...placed, metadata: { tenant: 'other' } }], {
        expectedVersion: 'no-stream',
      }),
      { code: 'EVENT_ID_CONFLICT' },
    );
  });
});

describe('traceparent', () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const span = '00f067aa0ba902b7';
  it('reads version 00 exactly, and a later version by its first four fields, as W3C Trace Context asks', () => {
    for (const traceparent of [
      `00-${trace}-${span}-01`,
      `01-${trace}-${span}-01`,
      `cc-${trace}-${span}-01-what-comes-next`,
    ]) {
      const context = spanContextOf({ traceparent });
      assert.equal(context?.traceId, trace, traceparent);
      assert.equal(context?.spanId, span, traceparent);
      assert.equal(context?.traceFlags, 1, traceparent);
    }
    for (const traceparent of [
      `00-${trace}-${span}-01-more`,
      `ff-${trace}-${span}-01`,
      `01-${trace}-${span}-01more`,
      `0-${trace}-${span}-01`,
      `00-${'0'.repeat(32)}-${span}-01`,
    ]) {
      assert.equal(spanContextOf({ traceparent }), undefined, traceparent);
    }
  });
});
