import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMessage, createWorkflowHandler, getInMemoryEventStore, getInMemoryTimerStore } from '@factline/core';
import { defineShipping } from '../fixtures/shipping-workflow.ts';
import { elapsed, overdueAfterMs, summarizeInstance } from './instance-summary.ts';

const paid = (orderId: string) => createMessage({ type: 'OrderPaid', data: { orderId }, key: orderId });

test('a fired timer is no longer pending; its input is the last one; a completion ends the rest', async () => {
  const store = getInMemoryEventStore();
  let now = Date.parse('2026-12-05T06:00:00Z');
  const handler = createWorkflowHandler(defineShipping(false), { store, now: () => now });
  await handler.handle(paid('B1'));
  const read = async () => summarizeInstance('shipping-B1', (await store.readStream('shipping-B1')).events);
  const scheduled = await read();
  assert.deepEqual(scheduled.timers, [
    { token: 'delivery', dueAt: new Date('2026-12-08T06:00:00Z'), messageType: 'ShippingLate' },
  ]);

  now += 3 * 86_400_000;
  const timers = getInMemoryTimerStore(store);
  const [due] = await timers.due(now, 10);
  assert.ok(due, 'the delivery timer is due');
  assert.equal(await handler.fireTimer(due), 'recorded');
  const fired = await read();
  assert.deepEqual(fired.timers, []);
  assert.equal(fired.lastInput?.type, 'ShippingLate');
  assert.equal(fired.state, 'running');

  await handler.handle(createMessage({ type: 'OrderDelivered', data: { orderId: 'B1' }, key: 'B1' }));
  const done = await read();
  assert.equal(done.state, 'completed');
  assert.equal(done.version, 8);
});

test('a record of any workflow type holding a shape its type never has is unreadable, never a throw', async () => {
  const store = getInMemoryEventStore();
  const handler = createWorkflowHandler(defineShipping(true), { store });
  await handler.handle(paid('C1'));
  await handler.handle(createMessage({ type: 'AddressChanged', data: { orderId: 'C1', address: '<x>' }, key: 'C1' }));
  await handler.handle(createMessage({ type: 'OrderPacked', data: { orderId: 'C1' }, key: 'C1' }));
  const { events } = await store.readStream('shipping-C1');
  assert.deepEqual(
    events.map((e) => e.type),
    ['$workflow.input', '$workflow.sent', '$workflow.timer-scheduled', '$workflow.parked', '$workflow.deferred'],
  );
  const shapes = [null, [], {}, 'text', 7, { message: null }, { message: {}, input: {}, token: 1, dueAt: 1e20 }];
  const types = [...events.map((e) => e.type), '$workflow.timer-cancelled'];
  for (const type of types) {
    for (const data of shapes) {
      const corrupt = events.map((e) => (e.streamVersion === 3 ? { ...e, type, data } : e));
      const summary = summarizeInstance('shipping-C1', corrupt);
      const label = `${type} ${JSON.stringify(data)}`;
      assert.equal(summary.unreadable?.version, 3, label);
      assert.equal(summary.unreadable?.type, type, label);
      assert.equal(summary.state, 'parked', label);
    }
  }
  const withoutError = ({ error: _, ...rest }: Record<string, unknown>) => rest;
  const missingError = events.map((e) =>
    e.type === '$workflow.parked' ? { ...e, data: withoutError(e.data as Record<string, unknown>) } : e,
  );
  assert.deepEqual(summarizeInstance('shipping-C1', missingError).unreadable, {
    version: 4,
    position: events[3]?.position,
    type: '$workflow.parked',
    problem: 'data.error must be an object, got undefined',
  });
});

test('a pending timer is overdue a minute past its due time, by the clock given', async () => {
  const store = getInMemoryEventStore();
  const at = Date.parse('2026-12-05T06:00:00Z');
  await createWorkflowHandler(defineShipping(false), { store, now: () => at }).handle(paid('D1'));
  const { events } = await store.readStream('shipping-D1');
  const due = Date.parse('2026-12-08T06:00:00Z');
  assert.equal(summarizeInstance('shipping-D1', events, due).overdueTimers, 0, 'due now');
  assert.equal(summarizeInstance('shipping-D1', events, due + overdueAfterMs - 1).overdueTimers, 0);
  assert.equal(summarizeInstance('shipping-D1', events, due + overdueAfterMs).overdueTimers, 1);
  assert.deepEqual([40_000, 5 * 60_000 + 1, 3 * 3_600_000, 2 * 86_400_000 + 5].map(elapsed), [
    '40 s',
    '5 min',
    '3 h',
    '2 d',
  ]);
});
