import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../errors/index.ts';
import { type FlowState, paymentFlow } from '../workflows/fixtures/payment-flow.ts';
import { instanceStreamId } from '../workflows/instance.ts';
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

  it('loads instances from snapshots by workflow name, through the conversions, with the same outcome', async () => {
    const calls = { to: 0, from: 0 };
    const effects: string[] = [];
    const scenario = createWorkflowScenario({
      workflows: [paymentFlow],
      handlers: services(effects),
      snapshots: {
        flow: {
          version: 1,
          toSnapshot: (state: FlowState) => {
            calls.to += 1;
            return { ...state };
          },
          fromSnapshot: (data) => {
            calls.from += 1;
            return data as FlowState;
          },
        },
      },
    });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'poor', amount: 500 } });
    assert.deepEqual(effects, ['released poor', 'cancelled poor']);
    // OrderPlaced, StockReserved, PaymentFailed: a snapshot after each, the last two loaded from one.
    assert.equal(calls.to, 3);
    assert.equal(calls.from, 2);
    const streamId = instanceStreamId(paymentFlow, 'poor');
    const snapshot = await scenario.snapshots.load<{ state: FlowState; status: string }>(streamId, {
      name: 'workflow',
    });
    assert.equal(snapshot?.state.status, 'completed');
    assert.equal(snapshot?.state.state.status, 'done');
    const plain = createWorkflowScenario({ workflows: [paymentFlow], handlers: services([]) });
    await plain.send({ type: 'OrderPlaced', data: { orderId: 'poor', amount: 500 } });
    assert.deepEqual(plain.deliveredTypes(), scenario.deliveredTypes());
    assert.deepEqual(
      (await scenario.instance(paymentFlow, 'poor')).state,
      (await plain.instance(paymentFlow, 'poor')).state,
    );
  });

  it('fails send with the error of a snapshot the store refuses', async () => {
    const scenario = createWorkflowScenario({
      workflows: [paymentFlow],
      handlers: services([]),
      snapshots: { flow: { version: 1, toSnapshot: (state: FlowState) => ({ ...state, at: new Map() }) } },
    });
    await assert.rejects(
      scenario.send({ type: 'OrderPlaced', data: { orderId: 'map', amount: 30 } }),
      (error: unknown) => error instanceof ValidationError,
    );
    // The input was recorded all the same: a snapshot never fails an input, only the scenario.
    assert.equal(scenario.workflows.get('flow')?.stats().recorded, 1);
  });

  it('refuses snapshots for a workflow it does not run, and options it does not know', () => {
    assert.throws(
      () => createWorkflowScenario({ workflows: [paymentFlow], snapshots: { checkout: { version: 1 } } }),
      (error: unknown) =>
        error instanceof ValidationError &&
        /snapshots\.checkout: names no workflow of the scenario/.test(error.message),
    );
    assert.throws(
      () => createWorkflowScenario({ workflows: [paymentFlow], clock: 1 } as never),
      (error: unknown) => error instanceof ValidationError && /createWorkflowScenario\.clock/.test(error.message),
    );
  });
});
