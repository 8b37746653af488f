import type { Decider, Event } from '@factline/core';

export interface OrderItem {
  sku: string;
  quantity: number;
  unitPrice: number;
}

export type OrderPlaced = Event<
  'OrderPlaced',
  { orderId: string; customerId: string; items: OrderItem[]; total: number }
>;
export type OrderPaid = Event<'OrderPaid', { orderId: string; amount: number }>;
export type OrderShipped = Event<'OrderShipped', { orderId: string; carrier: string }>;
export type OrderCancelled = Event<'OrderCancelled', { orderId: string; reason: string }>;
export type OrderEvent = OrderPlaced | OrderPaid | OrderShipped | OrderCancelled;

export type OrderCommand =
  | { type: 'PlaceOrder'; orderId: string; customerId: string; items: OrderItem[] }
  | { type: 'PayOrder'; orderId: string; amount: number }
  | { type: 'ShipOrder'; orderId: string; carrier: string }
  | { type: 'CancelOrder'; orderId: string; reason: string };

export type OrderStatus = 'none' | 'placed' | 'paid' | 'shipped' | 'cancelled';

export interface OrderState {
  status: OrderStatus;
  total: number;
  itemCount: number;
  paid: number;
}

/** A business rule was broken: the command is refused and nothing is written. */
export class OrderRuleError extends Error {
  override name = 'OrderRuleError';
}

const totalOf = (items: OrderItem[]) => items.reduce((sum, item) => sum + item.quantity * item.unitPrice, 0);

export const orderDecider: Decider<OrderState, OrderCommand, OrderEvent> = {
  initialState: () => ({ status: 'none', total: 0, itemCount: 0, paid: 0 }),

  evolve(state, event) {
    switch (event.type) {
      case 'OrderPlaced':
        return { status: 'placed', total: event.data.total, itemCount: event.data.items.length, paid: 0 };
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
        const { orderId, customerId, items } = command;
        return [{ type: 'OrderPlaced', data: { orderId, customerId, items, total: totalOf(items) } }];
      }
      case 'PayOrder':
        if (state.status !== 'placed') throw new OrderRuleError(`cannot pay an order that is ${state.status}`);
        if (command.amount !== state.total)
          throw new OrderRuleError(`payment ${command.amount} ≠ total ${state.total}`);
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
