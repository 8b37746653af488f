import { type Decider, type Event, type EventStore, foldEvents, handleCommand, type Message } from '@factline/core';
import { type OrderEvent, OrderRuleError, orderDecider } from '../order.ts';
import type { FulfilmentCommand } from './saga.ts';

type Data<T extends FulfilmentCommand['type']> = Extract<FulfilmentCommand, { type: T }>['data'];

/** Customers the demo payment provider refuses, and one it never answers for. */
export const refusedCustomers = new Set(['c-broke']);
export const silentCustomers = new Set(['c-slow']);

/** What the payment service records for an order, in the stream `payment-<orderId>`. */
export type PaymentEvent =
  | Event<'PaymentCharged', { orderId: string }>
  | Event<'PaymentFailed', { orderId: string; reason: string }>
  | Event<'PaymentRefunded', { orderId: string; amount: number; currency: string }>
  | Event<'PaymentVoided', { orderId: string }>;

export type PaymentCommand =
  | { type: 'Charge'; orderId: string }
  | { type: 'Decline'; orderId: string; reason: string }
  | { type: 'Refund'; orderId: string; amount: number; currency: string };

export interface PaymentState {
  /** `voided`: refunded before any charge, so no charge for this order from then on. */
  status: 'none' | 'charged' | 'failed' | 'refunded' | 'voided';
}

/**
 * The payment service's record of one order's payment. A charge and a
 * refund of one order are decided on this one stream (`handleCommand`
 * appends with the version it read, and decides again on a conflict), so
 * they commute: a refund after the charge gives it back; a refund before it
 * voids the order's payment, and the charge that arrives later is refused.
 * Each command is handled once per order whatever its deliveries: the state
 * says what was done already.
 */
export const paymentDecider: Decider<PaymentState, PaymentCommand, PaymentEvent> = {
  initialState: () => ({ status: 'none' }),
  evolve: (_state, event) => {
    switch (event.type) {
      case 'PaymentCharged':
        return { status: 'charged' };
      case 'PaymentFailed':
        return { status: 'failed' };
      case 'PaymentRefunded':
        return { status: 'refunded' };
      case 'PaymentVoided':
        return { status: 'voided' };
    }
  },
  decide: (command, { status }) => {
    const { orderId } = command;
    switch (command.type) {
      case 'Charge':
        if (status === 'none') return [{ type: 'PaymentCharged', data: { orderId } }];
        if (status === 'voided') {
          return [{ type: 'PaymentFailed', data: { orderId, reason: 'payment cancelled before it was charged' } }];
        }
        return []; // answered already
      case 'Decline':
        return status === 'none' ? [{ type: 'PaymentFailed', data: { orderId, reason: command.reason } }] : [];
      case 'Refund':
        if (status === 'charged') {
          const { amount, currency } = command;
          return [{ type: 'PaymentRefunded', data: { orderId, amount, currency } }];
        }
        // Nothing charged (yet): record that, so a charge still on its way is refused. A failed charge stays failed.
        if (status === 'none') return [{ type: 'PaymentVoided', data: { orderId } }];
        return [];
    }
  },
};

/** A service: handles one command, answering in the store (the harness passes its own; `npm start` the file's). */
export type FulfilmentService = (message: Message, context: { store: EventStore }) => Promise<void>;

/**
 * The services around the saga, by the command they handle: inventory and
 * payment answer with events in their own streams; the order's commands go
 * through `handleCommand` on the order aggregate.
 */
export const fulfilmentServices: Record<FulfilmentCommand['type'], FulfilmentService> = {
  ReserveStock: async (message, { store }) => {
    const { orderId, items } = message.data as Data<'ReserveStock'>;
    await store.append(`stock-${orderId}`, [{ type: 'StockReserved', data: { orderId, items } }]);
  },
  ReleaseStock: async (message, { store }) => {
    const { orderId, items } = message.data as Data<'ReleaseStock'>;
    await store.append(`stock-${orderId}`, [{ type: 'StockReleased', data: { orderId, items } }]);
  },
  ChargePayment: async (message, { store }) => {
    const { orderId, customerId, amount, currency } = message.data as Data<'ChargePayment'>;
    if (silentCustomers.has(customerId)) return; // the provider never answers: the saga's timer will
    const payment = `payment-${orderId}`;
    if (refusedCustomers.has(customerId)) {
      await handleCommand(store, payment, { type: 'Decline', orderId, reason: 'card declined' }, paymentDecider);
      return;
    }
    const { status } = foldEvents(paymentDecider, (await store.readStream<PaymentEvent>(payment)).events);
    const order = foldEvents(orderDecider, (await store.readStream<OrderEvent>(`order-${orderId}`)).events);
    // The order takes the payment before the saga hears of it (it ships a paid order only): not once the payment
    // was voided or answered, nor again on a redelivery. The charge itself is decided on the payment's stream,
    // which refuses it when a refund came first.
    if (status === 'none' && order.status !== 'paid') {
      try {
        await handleCommand(store, `order-${orderId}`, { type: 'PayOrder', orderId, amount, currency }, orderDecider);
      } catch (error) {
        if (!(error instanceof OrderRuleError)) throw error;
        // The order refuses the payment (cancelled meanwhile, another amount): not charged, and the saga told so.
        await handleCommand(store, payment, { type: 'Decline', orderId, reason: error.message }, paymentDecider);
        return;
      }
    }
    await handleCommand(store, payment, { type: 'Charge', orderId }, paymentDecider);
  },
  RefundPayment: async (message, { store }) => {
    const { orderId, amount, currency } = message.data as Data<'RefundPayment'>;
    await handleCommand(store, `payment-${orderId}`, { type: 'Refund', orderId, amount, currency }, paymentDecider);
  },
  ShipOrder: async (message, { store }) => {
    const { orderId, carrier } = message.data as Data<'ShipOrder'>;
    await handleCommand(store, `order-${orderId}`, { type: 'ShipOrder', orderId, carrier }, orderDecider);
  },
  CancelOrder: async (message, { store }) => {
    const { orderId, reason } = message.data as Data<'CancelOrder'>;
    await handleCommand(store, `order-${orderId}`, { type: 'CancelOrder', orderId, reason }, orderDecider);
  },
};
