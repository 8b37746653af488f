import type { Decider, EventOfDefinition } from '@factline/core';
import type { z } from 'zod';
import {
  defaultCurrency,
  type orderCancelled,
  type orderItem,
  type orderPaid,
  type orderPlaced,
  type orderShipped,
} from './schemas.ts';

export type OrderItem = z.infer<typeof orderItem>;

// The events at their current versions, typed by their schemas in schemas.ts.
export type OrderPlaced = EventOfDefinition<typeof orderPlaced>;
export type OrderPaid = EventOfDefinition<typeof orderPaid>;
export type OrderShipped = EventOfDefinition<typeof orderShipped>;
export type OrderCancelled = EventOfDefinition<typeof orderCancelled>;
export type OrderEvent = OrderPlaced | OrderPaid | OrderShipped | OrderCancelled;

export type OrderCommand =
  /** `currency` defaults to EUR, the shop's currency before orders had one. */
  | { type: 'PlaceOrder'; orderId: string; customerId: string; items: OrderItem[]; currency?: string }
  /** A payment is in the order's currency; `currency`, when given, must be it. */
  | { type: 'PayOrder'; orderId: string; amount: number; currency?: string }
  | { type: 'ShipOrder'; orderId: string; carrier: string }
  | { type: 'CancelOrder'; orderId: string; reason: string };

export type OrderStatus = 'none' | 'placed' | 'paid' | 'shipped' | 'cancelled';

export interface OrderState {
  status: OrderStatus;
  total: number;
  /** The order's currency; every order read from the log has one (version 1 ones through the upcaster). */
  currency: string;
  itemCount: number;
  paid: number;
}

/** A business rule was broken: the command is refused and nothing is written. */
export class OrderRuleError extends Error {
  override name = 'OrderRuleError';
}

const totalOf = (items: OrderItem[]) => items.reduce((sum, item) => sum + item.quantity * item.unitPrice, 0);

export const orderDecider: Decider<OrderState, OrderCommand, OrderEvent> = {
  initialState: () => ({ status: 'none', total: 0, currency: defaultCurrency, itemCount: 0, paid: 0 }),

  evolve(state, event) {
    switch (event.type) {
      case 'OrderPlaced':
        return {
          status: 'placed',
          total: event.data.total,
          currency: event.data.currency,
          itemCount: event.data.items.length,
          paid: 0,
        };
      case 'OrderPaid':
        return { ...state, status: 'paid', paid: state.paid + event.data.amount };
      case 'OrderShipped':
        return { ...state, status: 'shipped' };
      case 'OrderCancelled':
        return { ...state, status: 'cancelled' };
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'PlaceOrder': {
        if (state.status !== 'none') throw new OrderRuleError(`order ${command.orderId} exists already`);
        if (command.items.length === 0) throw new OrderRuleError('an order needs at least one item');
        const { orderId, customerId, items, currency = defaultCurrency } = command;
        return [{ type: 'OrderPlaced', data: { orderId, customerId, items, total: totalOf(items), currency } }];
      }
      case 'PayOrder':
        if (state.status !== 'placed') throw new OrderRuleError(`cannot pay an order that is ${state.status}`);
        if (command.currency !== undefined && command.currency !== state.currency) {
          throw new OrderRuleError(`payment in ${command.currency}, the order is in ${state.currency}`);
        }
        if (command.amount !== state.total)
          throw new OrderRuleError(`payment ${command.amount} ≠ total ${state.total} ${state.currency}`);
        return [{ type: 'OrderPaid', data: { orderId: command.orderId, amount: command.amount } }];
      case 'ShipOrder':
        if (state.status !== 'paid') throw new OrderRuleError(`cannot ship an order that is ${state.status}`);
        return [{ type: 'OrderShipped', data: { orderId: command.orderId, carrier: command.carrier } }];
      case 'CancelOrder':
        if (state.status === 'shipped' || state.status === 'cancelled') {
          throw new OrderRuleError(`cannot cancel an order that is ${state.status}`);
        }
        if (state.status === 'none') throw new OrderRuleError(`order ${command.orderId} does not exist`);
        return [{ type: 'OrderCancelled', data: { orderId: command.orderId, reason: command.reason } }];
    }
  },
};
