import {
  type CompletedStep,
  cancelTimer,
  compensations,
  complete,
  defineWorkflow,
  type Event,
  NonRetryableError,
  schedule,
  send,
  stepCompleted,
  type WorkflowOutput,
} from '@factline/core';
import type { OrderItem } from '../order.ts';

/** How long the saga waits for the payment before it cancels the order. */
export const paymentTimeoutMs = 15 * 60_000;

// What the saga hears: the order's own event, then the services' answers, and its own deadline.
export type FulfilmentInput =
  | Event<'OrderPlaced', { orderId: string; customerId: string; items: OrderItem[]; total: number; currency: string }>
  | Event<'StockReserved', { orderId: string }>
  | Event<'PaymentCharged', { orderId: string }>
  | Event<'PaymentFailed', { orderId: string; reason: string }>
  | Event<'PaymentTimedOut', { orderId: string }>;

// What it tells the services: commands, each handled once by its service.
export type FulfilmentCommand =
  | Event<'ReserveStock', { orderId: string; items: OrderItem[] }>
  | Event<'ReleaseStock', { orderId: string; items: OrderItem[] }>
  | Event<'ChargePayment', { orderId: string; customerId: string; amount: number; currency: string }>
  | Event<'ShipOrder', { orderId: string; carrier: string }>
  | Event<'CancelOrder', { orderId: string; reason: string }>;

export interface FulfilmentState {
  order?: Extract<FulfilmentInput, { type: 'OrderPlaced' }>['data'];
  stage: 'reserving' | 'charging' | 'done';
  /** Steps done so far, each with the command that undoes it. */
  steps: CompletedStep<FulfilmentCommand>[];
}

type Outputs = WorkflowOutput<FulfilmentCommand, FulfilmentInput>[];

// #region saga
/** Reserve the stock, charge the payment (within 15 minutes), ship; undo the reservation when payment fails. */
export const fulfilment = defineWorkflow<FulfilmentState, FulfilmentInput, FulfilmentCommand>({
  name: 'fulfilment',
  inputs: ['OrderPlaced', 'StockReserved', 'PaymentCharged', 'PaymentFailed', 'PaymentTimedOut'],
  start: ['OrderPlaced'],
  correlate: (input) => input.data.orderId,
  initialState: () => ({ stage: 'reserving', steps: [] }),
  evolve: (state, recorded) => {
    if (recorded.kind !== 'input') return state;
    const input = recorded.message;
    switch (input.type) {
      case 'OrderPlaced':
        return { ...state, order: input.data };
      case 'StockReserved': {
        const release = send<FulfilmentCommand>({
          type: 'ReleaseStock',
          data: { orderId: input.data.orderId, items: state.order?.items ?? [] },
        });
        return { ...state, stage: 'charging', steps: stepCompleted(state.steps, 'stock', release) };
      }
      default:
        return { ...state, stage: 'done' };
    }
  },
  decide: (input, state): Outputs => {
    const { orderId } = input.data;
    switch (input.type) {
      case 'OrderPlaced':
        return [send({ type: 'ReserveStock', data: { orderId, items: input.data.items } })];
      case 'StockReserved': {
        if (!state.order) throw new NonRetryableError(`stock reserved for unknown order ${orderId}`);
        const { customerId, total, currency } = state.order;
        return [
          send({ type: 'ChargePayment', data: { orderId, customerId, amount: total, currency } }),
          schedule({
            token: 'payment',
            afterMs: paymentTimeoutMs,
            message: { type: 'PaymentTimedOut', data: { orderId } },
          }),
        ];
      }
      case 'PaymentCharged':
        return [cancelTimer('payment'), send({ type: 'ShipOrder', data: { orderId, carrier: 'DHL' } }), complete()];
      case 'PaymentFailed':
      case 'PaymentTimedOut': {
        const reason = input.type === 'PaymentFailed' ? input.data.reason : 'no payment within 15 minutes';
        // Undo what was done, last step first, then cancel: explicit commands, recorded with the decision.
        return [...compensations(state.steps), send({ type: 'CancelOrder', data: { orderId, reason } }), complete()];
      }
    }
  },
});
// #endregion saga
