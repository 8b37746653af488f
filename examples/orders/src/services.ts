import {
  type Consumer,
  createEventBus,
  defineEventRelay,
  type EventBus,
  type Message,
  type Projection,
  type RecordedEvent,
  type SubscriberOptions,
  type Transport,
} from '@factline/core';
import type { OrderCancelled, OrderPlaced, OrderShipped } from './order.ts';

/** The topic the order events travel on, from the store to the services. */
export const orderEventsTopic = 'order-events';

/** What each service subscribes to; every service is its own consumer group and gets every event. */
export const serviceSubscriptions = {
  inventory: ['OrderPlaced'],
  payment: ['OrderPlaced'],
  notification: ['OrderPlaced', 'OrderShipped', 'OrderCancelled'],
} as const satisfies Record<string, readonly string[]>;

export type ServiceName = keyof typeof serviceSubscriptions;
const serviceNames = Object.keys(serviceSubscriptions) as ServiceName[];

/**
 * The store as the outbox: a relay, run by the projection runner, publishes
 * the order events to the services' topic once their appends commit.
 */
export function orderEventsRelay(transport: Transport): Projection<unknown> {
  return defineEventRelay({
    name: 'order_events_relay',
    transport,
    topic: orderEventsTopic,
    handles: [...new Set(Object.values(serviceSubscriptions).flat())],
  });
}

/** One thing a service did for one event. */
export interface ServiceAction {
  eventId: string;
  type: string;
  orderId: string;
  /** What it did, for humans. */
  summary: string;
  correlationId: string | undefined;
}

export interface OrderServices {
  bus: EventBus;
  consumers: Record<ServiceName, Consumer>;
  /** What each service did, in the order it did it. */
  actions: Record<ServiceName, ServiceAction[]>;
  /** Stock left per sku after the inventory service's reservations. */
  stock: Map<string, number>;
  /** Per service, the ids of the given events it should handle (by type). */
  expected(events: readonly RecordedEvent[]): Record<ServiceName, string[]>;
  /** Polls until every service has handled each expected event; throws at the deadline. */
  waitUntilHandled(events: readonly RecordedEvent[], deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const initialStock: Record<string, number> = { kettle: 10, mug: 24, tea: 12, lamp: 3 };

/**
 * The seed's event-notification picture: Inventory reserves stock and
 * Payment records a charge for each placed order, Notification writes a line
 * per placed, shipped and cancelled order. Each is an independent consumer
 * group on the bus; subscriptions start here, before the relay publishes.
 */
export async function startOrderServices(
  transport: Transport,
  consumerOptions: SubscriberOptions = {},
): Promise<OrderServices> {
  const bus = createEventBus({ transport, topic: orderEventsTopic });
  const actions: Record<ServiceName, ServiceAction[]> = { inventory: [], payment: [], notification: [] };
  const stock = new Map(Object.entries(initialStock));
  const record = (service: ServiceName, message: Message, orderId: string, summary: string) => {
    actions[service].push({
      eventId: message.id,
      type: message.type,
      orderId,
      summary,
      correlationId: message.metadata.correlationId,
    });
  };

  const inventory = bus.subscribe(
    'inventory',
    serviceSubscriptions.inventory,
    (message) => {
      const { orderId, items } = (message as unknown as OrderPlaced).data;
      for (const item of items) stock.set(item.sku, (stock.get(item.sku) ?? 0) - item.quantity);
      record('inventory', message, orderId, `reserved ${items.map((i) => `${i.quantity}× ${i.sku}`).join(', ')}`);
    },
    consumerOptions,
  );

  const payment = bus.subscribe(
    'payment',
    serviceSubscriptions.payment,
    (message) => {
      const { orderId, customerId, total } = (message as unknown as OrderPlaced).data;
      record('payment', message, orderId, `charged ${customerId} ${total}`);
    },
    consumerOptions,
  );

  const notification = bus.subscribe(
    'notification',
    serviceSubscriptions.notification,
    (message) => {
      const event = message as unknown as OrderPlaced | OrderShipped | OrderCancelled;
      const { orderId } = event.data;
      const line =
        event.type === 'OrderPlaced'
          ? `to ${event.data.customerId}: order placed, total ${event.data.total}`
          : event.type === 'OrderShipped'
            ? `order shipped by ${event.data.carrier}`
            : `order cancelled (${event.data.reason})`;
      record('notification', message, orderId, line);
    },
    consumerOptions,
  );
  await bus.start();

  const expected = (events: readonly RecordedEvent[]) =>
    Object.fromEntries(
      serviceNames.map((name) => [
        name,
        events.filter((e) => (serviceSubscriptions[name] as readonly string[]).includes(e.type)).map((e) => e.id),
      ]),
    ) as Record<ServiceName, string[]>;

  return {
    bus,
    consumers: { inventory, payment, notification },
    actions,
    stock,
    expected,
    async waitUntilHandled(events, deadlineMs = 10_000) {
      const wanted = expected(events);
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        const missing = serviceNames.flatMap((name) => {
          const done = new Set(actions[name].map((a) => a.eventId));
          const left = wanted[name].filter((id) => !done.has(id)).length;
          return left > 0 ? [`${name}: ${left}`] : [];
        });
        if (missing.length === 0) return;
        if (Date.now() > deadline) {
          throw new Error(
            `services did not handle every event within ${deadlineMs} ms (missing ${missing.join(', ')})`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    stop: () => bus.stop(),
  };
}

const titles: Record<ServiceName, string> = {
  inventory: 'Inventory service (reserves stock on OrderPlaced)',
  payment: 'Payment service (records a charge on OrderPlaced)',
  notification: 'Notification service (OrderPlaced, OrderShipped, OrderCancelled)',
};

/** One short section per service: what it did, per order, with the correlation id it carried. */
export function printServices(services: OrderServices, print: (line: string) => void = console.log): void {
  for (const name of serviceNames) {
    print(`${titles[name]} — consumer group "${name}":`);
    for (const action of services.actions[name]) {
      print(`  order-${action.orderId}  ${action.summary}  (${action.correlationId})`);
    }
    if (name === 'inventory') {
      print(`  stock left: ${[...services.stock].map(([sku, n]) => `${sku} ${n}`).join(', ')}`);
    }
  }
}
