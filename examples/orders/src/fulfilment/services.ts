import { type EventStore, handleCommand, type Message } from '@factline/core';
import { orderDecider } from '../order.ts';
import type { FulfilmentCommand } from './saga.ts';

type Data<T extends FulfilmentCommand['type']> = Extract<FulfilmentCommand, { type: T }>['data'];

/** Customers the demo payment provider refuses, and one it never answers for. */
export const refusedCustomers = new Set(['c-broke']);
export const silentCustomers = new Set(['c-slow']);

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
    if (refusedCustomers.has(customerId)) {
      await store.append(`payment-${orderId}`, [{ type: 'PaymentFailed', data: { orderId, reason: 'card declined' } }]);
      return;
    }
    await handleCommand(store, `order-${orderId}`, { type: 'PayOrder', orderId, amount, currency }, orderDecider);
    await store.append(`payment-${orderId}`, [{ type: 'PaymentCharged', data: { orderId } }]);
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
