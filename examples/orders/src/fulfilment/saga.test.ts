import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cancelTimer,
  complete,
  createMessage,
  type EventStore,
  foldEvents,
  getInMemoryEventStore,
  handleCommand,
  type Message,
  send,
} from '@factline/core';
import { createWorkflowScenario, workflowSpecification } from '@factline/core/testing';
import { type OrderEvent, orderDecider } from '../order.ts';
import { fulfilment, paymentTimeoutMs } from './saga.ts';
import { fulfilmentServices, type PaymentEvent } from './services.ts';

const items = [{ sku: 'sku-1', quantity: 2, unitPrice: 10 }];
const placed = (orderId: string, customerId: string) => ({
  type: 'OrderPlaced' as const,
  data: { orderId, customerId, items, total: 20, currency: 'EUR' },
});

async function orderScenario(
  orderId: string,
  customerId: string,
  handlers: Record<string, (message: Message, context: { store: EventStore }) => unknown> = fulfilmentServices,
) {
  const scenario = createWorkflowScenario({ workflows: [fulfilment], handlers });
  await handleCommand(
    scenario.store,
    `order-${orderId}`,
    { type: 'PlaceOrder', orderId, customerId, items },
    orderDecider,
  );
  await scenario.drain();
  const orderStatus = async () =>
    foldEvents(orderDecider, (await scenario.store.readStream<OrderEvent>(`order-${orderId}`)).events).status;
  const payment = async () => (await scenario.store.readStream<PaymentEvent>(`payment-${orderId}`)).events;
  return { scenario, orderStatus, payment };
}

/** What the payment service kept of the order's money: charged, less refunded. */
const kept = (events: readonly PaymentEvent[], total: number) =>
  events.reduce((sum, { type, data }) => {
    if (type === 'PaymentCharged') return sum + total;
    if (type === 'PaymentRefunded') return sum - data.amount;
    return sum;
  }, 0);

describe('the fulfilment saga', () => {
  it('reserves, charges and ships a paid order', async () => {
    const { scenario, orderStatus } = await orderScenario('1', 'c-1');
    assert.equal(await orderStatus(), 'shipped');
    assert.deepEqual(
      scenario.deliveredTypes().filter((type) => /Stock|Payment|Ship|Cancel/.test(type)),
      ['ReserveStock', 'StockReserved', 'ChargePayment', 'PaymentCharged', 'ShipOrder', 'OrderShipped'],
    );
    assert.equal((await scenario.instance(fulfilment, '1')).status, 'completed');
    assert.equal(await scenario.timers.pendingCount(), 0, 'the payment deadline was cancelled');
  });

  it('releases the stock and cancels the order when the payment fails', async () => {
    const { scenario, orderStatus } = await orderScenario('2', 'c-broke');
    assert.equal(await orderStatus(), 'cancelled');
    const types = scenario.deliveredTypes();
    assert.ok(types.indexOf('ReleaseStock') < types.indexOf('CancelOrder'), 'the compensation comes first');
    assert.ok(!types.includes('ShipOrder'));
    assert.ok(!types.includes('RefundPayment'), 'a declined charge has nothing to refund');
  });

  it('refunds a charge whose answer arrives after the payment deadline cancelled the order', async () => {
    // The provider charges at minute 14:59, but its PaymentCharged reaches the saga after the timer fired.
    let charge: Message | undefined;
    const { scenario, orderStatus, payment } = await orderScenario('6', 'c-1', {
      ...fulfilmentServices,
      ChargePayment: (message) => {
        charge = message;
      },
    });
    await scenario.advance(paymentTimeoutMs - 60_000);
    assert.ok(charge, 'ChargePayment was sent');
    await fulfilmentServices.ChargePayment(charge, { store: scenario.store }); // recorded, not yet delivered
    const before = scenario.deliveredTypes().length;
    await scenario.advance(60_000);
    const after = scenario.deliveredTypes().slice(before);
    assert.deepEqual(
      after.filter((type) => type.endsWith('Payment') || /Stock$|^CancelOrder$/.test(type)),
      ['RefundPayment', 'ReleaseStock', 'CancelOrder'],
      'the timeout undoes the payment too, whatever its answer',
    );
    assert.ok(after.includes('PaymentCharged'), 'the late answer was delivered');
    assert.equal(scenario.workflows.get('fulfilment')?.stats()['after-end'], 1, 'and dropped by the ended saga');
    assert.equal(await orderStatus(), 'cancelled');
    const events = await payment();
    assert.deepEqual(
      events.map((e) => e.type),
      ['PaymentCharged', 'PaymentRefunded'],
    );
    assert.deepEqual(events[1]?.data, { orderId: '6', amount: 20, currency: 'EUR' });
    assert.equal(kept(events, 20), 0, 'no money kept for a cancelled order');
  });

  it('refuses a charge acted on after the payment deadline cancelled the order', async () => {
    let charge: Message | undefined;
    const { scenario, orderStatus, payment } = await orderScenario('7', 'c-1', {
      ...fulfilmentServices,
      ChargePayment: (message) => {
        charge = message;
      },
    });
    await scenario.advance(paymentTimeoutMs);
    assert.equal(await orderStatus(), 'cancelled');
    assert.ok(charge);
    // The provider gets to the command only now: the refund came first, so it must not charge.
    await fulfilmentServices.ChargePayment(charge, { store: scenario.store });
    await scenario.drain();
    const events = await payment();
    assert.deepEqual(
      events.map((e) => [e.type, e.data]),
      [
        ['PaymentVoided', { orderId: '7' }],
        ['PaymentFailed', { orderId: '7', reason: 'payment cancelled before it was charged' }],
      ],
    );
    assert.equal(kept(events, 20), 0);
    const order = await scenario.store.readStream<OrderEvent>('order-7');
    assert.ok(!order.events.some((e) => e.type === 'OrderPaid'), 'the order never took the payment');
    assert.equal(scenario.workflows.get('fulfilment')?.stats()['after-end'], 1, 'the late PaymentFailed is dropped');
  });

  it('cancels an order with no payment within 15 minutes, by its timer on the virtual clock', async () => {
    const { scenario, orderStatus } = await orderScenario('3', 'c-slow');
    await scenario.advance(paymentTimeoutMs - 1);
    assert.equal(await orderStatus(), 'placed', 'not a millisecond early');
    const before = scenario.deliveredTypes().length;
    await scenario.advance(1);
    assert.equal(await orderStatus(), 'cancelled');
    // The fired timer is an input recorded in the instance's stream; what it decided went out.
    // The payment is undone too: nothing was charged, so the refund voids it (no charge for the order from then on).
    assert.deepEqual(scenario.deliveredTypes().slice(before), [
      'RefundPayment',
      'ReleaseStock',
      'CancelOrder',
      'PaymentVoided',
      'StockReleased',
      'OrderCancelled',
    ]);
  });

  it('decides as given/when/then says', () => {
    workflowSpecification(fulfilment)
      .given([placed('4', 'c-1'), { type: 'StockReserved', data: { orderId: '4' } }])
      .when({ type: 'PaymentCharged', data: { orderId: '4' } })
      .thenOutputs([
        cancelTimer('payment'),
        send({ type: 'ShipOrder', data: { orderId: '4', carrier: 'DHL' } }),
        complete(),
      ]);
    workflowSpecification(fulfilment)
      .given([placed('5', 'c-1'), { type: 'StockReserved', data: { orderId: '5' } }])
      .when({ type: 'PaymentTimedOut', data: { orderId: '5' } })
      .thenOutputs([
        send({ type: 'RefundPayment', data: { orderId: '5', amount: 20, currency: 'EUR' } }),
        send({ type: 'ReleaseStock', data: { orderId: '5', items } }),
        send({ type: 'CancelOrder', data: { orderId: '5', reason: 'no payment within 15 minutes' } }),
        complete(),
      ]);
    workflowSpecification(fulfilment)
      .given([placed('8', 'c-1'), { type: 'StockReserved', data: { orderId: '8' } }])
      .when({ type: 'PaymentFailed', data: { orderId: '8', reason: 'card declined' } })
      .thenOutputs([
        send({ type: 'ReleaseStock', data: { orderId: '8', items } }),
        send({ type: 'CancelOrder', data: { orderId: '8', reason: 'card declined' } }),
        complete(),
      ]);
  });
});

describe('the payment service', () => {
  const charge = (orderId: string, customerId = 'c-1') =>
    createMessage({ type: 'ChargePayment', data: { orderId, customerId, amount: 20, currency: 'EUR' } });
  const refund = (orderId: string) =>
    createMessage({ type: 'RefundPayment', data: { orderId, amount: 20, currency: 'EUR' } });
  async function placedOrder(orderId: string) {
    const store = getInMemoryEventStore();
    await handleCommand(
      store,
      `order-${orderId}`,
      { type: 'PlaceOrder', orderId, customerId: 'c-1', items },
      orderDecider,
    );
    const payment = async () => (await store.readStream<PaymentEvent>(`payment-${orderId}`)).events;
    return { store, payment };
  }

  it('keeps no money whichever of a charge and its refund comes first, each handled once per order', async () => {
    const first = await placedOrder('p1');
    for (const message of [charge('p1'), refund('p1'), charge('p1'), refund('p1')]) {
      await fulfilmentServices[message.type as keyof typeof fulfilmentServices](message, { store: first.store });
    }
    assert.deepEqual(
      (await first.payment()).map((e) => e.type),
      ['PaymentCharged', 'PaymentRefunded'],
    );
    const second = await placedOrder('p2');
    for (const message of [refund('p2'), charge('p2'), refund('p2'), charge('p2')]) {
      await fulfilmentServices[message.type as keyof typeof fulfilmentServices](message, { store: second.store });
    }
    assert.deepEqual(
      (await second.payment()).map((e) => e.type),
      ['PaymentVoided', 'PaymentFailed'],
    );
    for (const events of [await first.payment(), await second.payment()]) assert.equal(kept(events, 20), 0);
  });

  it('charges on a redelivery an order that took the payment before the service stopped', async () => {
    const { store, payment } = await placedOrder('p5');
    // The first delivery stopped after the order took the payment, before the charge was recorded.
    await handleCommand(
      store,
      'order-p5',
      { type: 'PayOrder', orderId: 'p5', amount: 20, currency: 'EUR' },
      orderDecider,
    );
    await fulfilmentServices.ChargePayment(charge('p5'), { store });
    await fulfilmentServices.ChargePayment(charge('p5'), { store });
    assert.deepEqual(
      (await payment()).map((e) => e.type),
      ['PaymentCharged'],
    );
  });

  it('refunds nothing for a declined charge', async () => {
    const { store, payment } = await placedOrder('p3');
    await fulfilmentServices.ChargePayment(charge('p3', 'c-broke'), { store });
    await fulfilmentServices.RefundPayment(refund('p3'), { store });
    assert.deepEqual(
      (await payment()).map((e) => [e.type, e.data]),
      [['PaymentFailed', { orderId: 'p3', reason: 'card declined' }]],
    );
  });

  it('declines a charge the order refuses: cancelled before the charge came', async () => {
    const { store, payment } = await placedOrder('p4');
    await handleCommand(
      store,
      'order-p4',
      { type: 'CancelOrder', orderId: 'p4', reason: 'changed mind' },
      orderDecider,
    );
    await fulfilmentServices.ChargePayment(charge('p4'), { store });
    assert.deepEqual(
      (await payment()).map((e) => [e.type, e.data]),
      [['PaymentFailed', { orderId: 'p4', reason: 'cannot pay an order that is cancelled' }]],
    );
  });
});
