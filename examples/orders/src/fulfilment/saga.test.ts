import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cancelTimer, complete, foldEvents, handleCommand, send } from '@factline/core';
import { createWorkflowScenario, workflowSpecification } from '@factline/core/testing';
import { type OrderEvent, orderDecider } from '../order.ts';
import { fulfilment, paymentTimeoutMs } from './saga.ts';
import { fulfilmentServices } from './services.ts';

const items = [{ sku: 'sku-1', quantity: 2, unitPrice: 10 }];
const placed = (orderId: string, customerId: string) => ({
  type: 'OrderPlaced' as const,
  data: { orderId, customerId, items, total: 20, currency: 'EUR' },
});

async function orderScenario(orderId: string, customerId: string) {
  const scenario = createWorkflowScenario({ workflows: [fulfilment], handlers: fulfilmentServices });
  await handleCommand(
    scenario.store,
    `order-${orderId}`,
    { type: 'PlaceOrder', orderId, customerId, items },
    orderDecider,
  );
  await scenario.drain();
  const orderStatus = async () =>
    foldEvents(orderDecider, (await scenario.store.readStream<OrderEvent>(`order-${orderId}`)).events).status;
  return { scenario, orderStatus };
}

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
  });

  it('cancels an order with no payment within 15 minutes, by its timer on the virtual clock', async () => {
    const { scenario, orderStatus } = await orderScenario('3', 'c-slow');
    await scenario.advance(paymentTimeoutMs - 1);
    assert.equal(await orderStatus(), 'placed', 'not a millisecond early');
    const before = scenario.deliveredTypes().length;
    await scenario.advance(1);
    assert.equal(await orderStatus(), 'cancelled');
    // The fired timer is an input recorded in the instance's stream; what it decided went out.
    assert.deepEqual(scenario.deliveredTypes().slice(before), [
      'ReleaseStock',
      'CancelOrder',
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
        send({ type: 'ReleaseStock', data: { orderId: '5', items } }),
        send({ type: 'CancelOrder', data: { orderId: '5', reason: 'no payment within 15 minutes' } }),
        complete(),
      ]);
  });
});
