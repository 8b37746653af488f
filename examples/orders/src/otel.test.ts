import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { handleCommand } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteEventStore, getSqliteTransport, startSqliteProjections } from '@factline/sqlite';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { registerTestSdk, type TestSdk } from '../../../packages/core/src/tracing/fixtures/otel-sdk.ts';
import { orderDecider } from './order.ts';
import { orderEventsRelay, orderEventsTopic, startOrderServices } from './services.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

/** Every span reachable from `start` through parents and links, either way: what one trace view can join. */
function connected(spans: readonly ReadableSpan[], start: ReadableSpan): Set<ReadableSpan> {
  const edges = new Map<string, Set<string>>();
  const join = (a: string, b: string) => {
    edges.set(a, (edges.get(a) ?? new Set()).add(b));
    edges.set(b, (edges.get(b) ?? new Set()).add(a));
  };
  for (const span of spans) {
    const id = span.spanContext().spanId;
    if (span.parentSpanContext) join(id, span.parentSpanContext.spanId);
    for (const link of span.links) join(id, link.context.spanId);
  }
  const seen = new Set([start.spanContext().spanId]);
  const todo = [...seen];
  while (todo.length > 0) {
    for (const next of edges.get(todo.pop() as string) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        todo.push(next);
      }
    }
  }
  return new Set(spans.filter((s) => seen.has(s.spanContext().spanId)));
}

test('one order on the SQLite reference system: one connected trace across the relay and three groups, with a retry and a dead letter', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-otel-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db') });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  // Notification refuses order 2001 (not retryable): it is dead-lettered at its first attempt.
  const services = await startOrderServices(
    transport,
    store.database,
    { pollMs: 20, maxRetries: 2, retryDelay: 0 },
    { service: 'notification', orderId: '2001' },
  );
  // Payment's first charge of order 2001 fails in the database (a trigger asking a JS function): tried again.
  const busy = new Set(['2001']);
  store.database.function('payment_busy_once', (orderId: unknown) => (busy.delete(String(orderId)) ? 1 : 0));
  store.database.exec(`CREATE TEMP TRIGGER payment_busy BEFORE INSERT ON payment_charges
    WHEN payment_busy_once(NEW.order_id) BEGIN SELECT RAISE(ABORT, 'card service busy'); END`);
  const projections = await startSqliteProjections(store, [orderEventsRelay(transport)]);
  const { inventory, payment, notification } = services.consumers;
  const process = (spans: readonly ReadableSpan[], group: string) =>
    spans.filter(
      (s) => s.name === `process ${orderEventsTopic}` && s.attributes['messaging.consumer.group.name'] === group,
    );
  try {
    const placed = await handleCommand(
      store,
      'order-2001',
      {
        type: 'PlaceOrder',
        orderId: '2001',
        customerId: 'barbara',
        items: [{ sku: 'kettle', quantity: 1, unitPrice: 30 }],
      },
      orderDecider,
      { metadata: { correlationId: 'checkout-2001', causationId: 'request-2001' } },
    );
    await waitUntil(
      () => inventory.stats().handled === 1 && payment.stats().handled === 1 && notification.stats().deadLettered === 1,
      'every group settled the order',
    );
    // A process span ends once its delivery settled: wait for the three.
    await waitUntil(
      () =>
        ['inventory', 'payment', 'notification'].every((g) => process(sdk.spans.getFinishedSpans(), g).length === 1),
      'three process spans ended',
    );
    const spans = sdk.spans.getFinishedSpans();
    const event = placed.newEvents[0];
    const append = spans.find((s) => s.name === 'append order') as ReadableSpan;
    assert.ok(append, 'an append span');
    assert.equal(append.attributes['db.system.name'], 'sqlite');
    assert.equal(
      String(event?.metadata.traceparent).split('-')[2],
      append.spanContext().spanId,
      'the event names its append',
    );

    const batch = spans.find((s) => s.name === 'projection order_events_relay') as ReadableSpan;
    assert.deepEqual(
      batch.links.map((l) => l.context.spanId),
      [append.spanContext().spanId],
      'the relay batch links to the append',
    );
    const send = spans.find(
      (s) => s.name === `send ${orderEventsTopic}` && s.parentSpanContext?.spanId === batch.spanContext().spanId,
    ) as ReadableSpan;
    assert.ok(send, 'the relay sends inside its batch span');
    assert.equal(send.attributes['messaging.system'], 'sqlite');

    // One connected trace: the command, the append, the relay's batch and send, the three groups' process spans.
    const command = spans.find((s) => s.name === 'command order') as ReadableSpan;
    const operation = [
      command,
      append,
      batch,
      send,
      ...['inventory', 'payment', 'notification'].flatMap((g) => process(spans, g)),
    ];
    const reachable = connected(spans, append);
    for (const span of operation) {
      assert.ok(reachable.has(span), `${span.name} ${span.attributes['messaging.consumer.group.name'] ?? ''} joined`);
      assert.equal(span.attributes['factline.correlation_id'], 'checkout-2001', `correlation on ${span.name}`);
      assert.equal(span.attributes['factline.causation_id'], 'request-2001', `causation on ${span.name}`);
    }
    for (const group of ['inventory', 'payment', 'notification']) {
      const [span] = process(spans, group);
      assert.deepEqual(
        span?.links.map((l) => l.context.spanId),
        [append.spanContext().spanId],
        `${group} links to the append`,
      );
      assert.equal(span?.attributes['messaging.message.id'], event?.id);
    }

    // The retried delivery: attempt 2, its failed first try as an event with the policy's decision.
    const [paid] = process(spans, 'payment');
    assert.equal(paid?.attributes['factline.attempt'], 2);
    assert.equal(paid?.attributes['factline.settle'], 'ack');
    const failures = paid?.events.filter((e) => e.name === 'factline.attempt_failed') ?? [];
    assert.equal(failures.length, 1);
    assert.equal(failures[0]?.attributes?.['factline.retry.decision'], 'retry');
    assert.match(String(failures[0]?.attributes?.['exception.message']), /card service busy/);

    // The dead-lettered delivery: one attempt, settled as a dead letter, status error with the handler's message.
    const [refused] = process(spans, 'notification');
    assert.equal(refused?.attributes['factline.attempt'], 1);
    assert.equal(refused?.attributes['factline.settle'], 'dead-letter');
    assert.equal(refused?.status.code, 2);
    assert.equal(refused?.status.message, 'notification refuses order 2001 (injected fault)');
    assert.equal((await notification.deadLetters.list())[0]?.attempts, 1);
  } finally {
    await projections.stop();
    await services.stop();
    await transport.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
