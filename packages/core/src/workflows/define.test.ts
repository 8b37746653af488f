import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError } from '../errors/index.ts';
import { workflowSpecification } from '../testing/workflow-specification.ts';
import { compensations, stepCompleted } from './compensation.ts';
import { cancelTimer, complete, defineWorkflow, schedule, send } from './define.ts';
import { derivedId } from './derived-id.ts';
import { type FlowState, paymentFlow, poison } from './fixtures/payment-flow.ts';

describe('workflow definitions (given/when/then on the pure functions)', () => {
  const placed = { type: 'OrderPlaced', data: { orderId: 'o1', amount: 30 } } as const;
  const reserved = { type: 'StockReserved', data: { orderId: 'o1' } } as const;

  it('starts by reserving stock', () => {
    workflowSpecification(paymentFlow)
      .given([])
      .when(placed)
      .thenOutputs([send({ type: 'ReserveStock', data: { orderId: 'o1' } })]);
  });

  it('charges with a 15-minute deadline once the stock is reserved', () => {
    workflowSpecification(paymentFlow)
      .given([placed])
      .when(reserved)
      .thenOutputs([
        send({ type: 'ChargePayment', data: { orderId: 'o1', amount: 30 } }),
        schedule({ token: 'payment', afterMs: 900_000, message: { type: 'PaymentTimedOut', data: { orderId: 'o1' } } }),
      ]);
  });

  it('ships, cancels the deadline and completes on payment', () => {
    workflowSpecification(paymentFlow)
      .given([placed, reserved])
      .when({ type: 'PaymentSucceeded', data: { orderId: 'o1' } })
      .thenOutputs([cancelTimer('payment'), send({ type: 'ShipOrder', data: { orderId: 'o1' } }), complete()]);
  });

  it('compensates completed steps in reverse order, then cancels, when payment fails', () => {
    workflowSpecification(paymentFlow)
      .given([placed, reserved])
      .when({ type: 'PaymentFailed', data: { orderId: 'o1', reason: 'declined' } })
      .thenOutputs([
        send({ type: 'ReleaseStock', data: { orderId: 'o1' } }),
        send({ type: 'CancelOrder', data: { orderId: 'o1', reason: 'declined' } }),
        complete(),
      ]);
  });

  it('folds the state through inputs', () => {
    workflowSpecification(paymentFlow)
      .given([placed])
      .when(reserved)
      .thenState((state: FlowState) => {
        assert.equal(state.status, 'charging');
        assert.deepEqual(
          state.steps.map((s) => s.step),
          ['stock'],
        );
      });
  });

  it('shows a terminal failure of decide', () => {
    poison.failing = true;
    workflowSpecification(paymentFlow)
      .given([placed])
      .when({ type: 'Poison', data: { orderId: 'o1', terminal: true } })
      .thenThrows(/poisoned/);
  });

  it('keeps compensations last-first and a step once', () => {
    const a = send({ type: 'UndoA', data: {} });
    const b = send({ type: 'UndoB', data: {} });
    const steps = stepCompleted(stepCompleted(stepCompleted([], 'a', a), 'b', b), 'a', a);
    assert.deepEqual(compensations(steps), [b, a]);
  });

  it('derives the same id from the same parts, another from others', () => {
    assert.equal(derivedId('a', 'b'), derivedId('a', 'b'));
    assert.notEqual(derivedId('a', 'b'), derivedId('ab'));
    assert.match(derivedId('x'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('refuses a definition with a bad name, a start that is no input, or an unknown key', () => {
    const base = { ...paymentFlow };
    assert.throws(() => defineWorkflow({ ...base, name: 'has-dash' }), isValidationError);
    assert.throws(() => defineWorkflow({ ...base, start: ['Nope' as 'OrderPlaced'] }), isValidationError);
    assert.throws(() => defineWorkflow({ ...base, extra: 1 } as never), isValidationError);
  });
});
