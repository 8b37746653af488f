import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { paymentFlow } from '../workflows/fixtures/payment-flow.ts';
import { createWorkflowScenario, type ScenarioHandler } from './workflow-scenario.ts';

const reply =
  (type: string, extra: Record<string, unknown> = {}): ScenarioHandler =>
  async (message, { store }) => {
    const { orderId } = message.data as { orderId: string };
    await store.append(`svc-${orderId}`, [{ type, data: { orderId, ...extra } }]);
  };

const services = (effects: string[]): Record<string, ScenarioHandler> => ({
  ReserveStock: reply('StockReserved'),
  ChargePayment: async (message, context) => {
    const { amount } = message.data as { amount: number };
    if (amount === 0) return; // the payment service never answers
    if (amount > 100) return reply('PaymentFailed', { reason: 'declined' })(message, context);
    return reply('PaymentSucceeded')(message, context);
  },
  ShipOrder: (message) => effects.push(`shipped ${(message.data as { orderId: string }).orderId}`),
  ReleaseStock: (message) => effects.push(`released ${(message.data as { orderId: string }).orderId}`),
  CancelOrder: (message) => effects.push(`cancelled ${(message.data as { orderId: string }).orderId}`),
});

describe('createWorkflowScenario', () => {
  it('runs a saga to its end with its services, draining until idle', async () => {
    const effects: string[] = [];
    const scenario = createWorkflowScenario({ workflows: [paymentFlow], handlers: services(effects) });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'ok', amount: 30 } });
    assert.deepEqual(effects, ['shipped ok']);
    assert.deepEqual(scenario.deliveredTypes(), [
      'OrderPlaced',
      'ReserveStock',
      'StockReserved',
      'ChargePayment',
      'PaymentSucceeded',
      'ShipOrder',
    ]);
    const instance = await scenario.instance(paymentFlow, 'ok');
    assert.equal(instance.status, 'completed');
    assert.equal(await scenario.timers.pendingCount(), 0);
  });

  it('compensates when the payment fails', async () => {
    const effects: string[] = [];
    const scenario = createWorkflowScenario({ workflows: [paymentFlow], handlers: services(effects) });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'poor', amount: 500 } });
    assert.deepEqual(effects, ['released poor', 'cancelled poor']);
  });

  it('fires the payment deadline when the virtual clock passes it, not before', async () => {
    const effects: string[] = [];
    const scenario = createWorkflowScenario({ workflows: [paymentFlow], handlers: services(effects) });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'slow', amount: 0 } });
    assert.equal(await scenario.timers.pendingCount(), 1);
    await scenario.advance(14 * 60_000);
    assert.deepEqual(effects, []);
    const before = scenario.clock.now();
    await scenario.advance(60_000);
    assert.deepEqual(effects, ['released slow', 'cancelled slow']);
    assert.equal(scenario.clock.now(), before + 60_000);
    assert.equal(scenario.workflows.get('flow')?.stats().recorded, 3);
  });

  it('keeps what nobody took', async () => {
    const scenario = createWorkflowScenario({ workflows: [paymentFlow] });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'x', amount: 1 } });
    assert.deepEqual(
      scenario.unrouted.map((m) => m.type),
      ['ReserveStock'],
    );
  });
});
