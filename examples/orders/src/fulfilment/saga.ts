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
  /** Gives back what was charged for the order, or, when nothing was yet, makes sure nothing will be. */
  | Event<'RefundPayment', { orderId: string; amount: number; currency: string }>
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
/**
 * Reserve the stock, charge the payment (within 15 minutes), ship. When the
 * payment fails, release the stock; when it does not come in time, also
 * refund it: an answer that arrives after `complete()` is dropped.
 */
export const fulfilment = defineWorkflow<FulfilmentState, FulfilmentInput, FulfilmentCommand>({
  name: 'fulfilment',
  inputs: ['OrderPlaced', 'StockReserved', 'PaymentCharged', 'PaymentFailed', 'PaymentTimedOut'],
  start: ['OrderPlaced'],
  correlate: (input) => input.data.orderId,
  initialState: () => ({ stage: 'reserving', steps: [] }),
  evolve: (state, recorded) => {
    if (recorded.kind === 'sent') {
      // The payment may be taken from the moment its command leaves, answered or not: undoing it is due from
      // then on (the payment service refunds the charge, or refuses one that comes after the refund).
      if (recorded.message.type !== 'ChargePayment') return state;
      const { orderId, amount, currency } = recorded.message.data as Extract<
        FulfilmentCommand,
        { type: 'ChargePayment' }
      >['data'];
      const refund = send<FulfilmentCommand>({ type: 'RefundPayment', data: { orderId, amount, currency } });
      return { ...state, steps: stepCompleted(state.steps, 'payment', refund) };
    }
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
      case 'PaymentFailed': {
        // Nothing was charged: undo the other steps, last first, then cancel (commands recorded with the decision).
        const undo = compensations(state.steps.filter(({ step }) => step !== 'payment'));
        return [...undo, send({ type: 'CancelOrder', data: { orderId, reason: input.data.reason } }), complete()];
      }
      case 'PaymentTimedOut': {
        // The charge may still happen, and its answer, arriving after complete(), would be dropped ('after-end'):
        // undo every step, the payment's too (refunded, or refused when it comes later), then cancel.
        const reason = 'no payment within 15 minutes';
        return [...compensations(state.steps), send({ type: 'CancelOrder', data: { orderId, reason } }), complete()];
      }
    }
  },
});
// #endregion saga
