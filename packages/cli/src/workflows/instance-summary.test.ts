import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMessage, createWorkflowHandler, getInMemoryEventStore, getInMemoryTimerStore } from '@factline/core';
import { defineShipping } from '../fixtures/shipping-workflow.ts';
import { summarizeInstance } from './instance-summary.ts';

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
