import {
  type Consumer,
  createEventBus,
  defineEventRelay,
  type EventBus,
  type Message,
  NonRetryableError,
  type Projection,
  type RecordedEvent,
  type SubscriberOptions,
  type Transport,
} from '@factline/core';
import { getSqliteDeadLetterStore, getSqliteInbox } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import type { OrderCancelled, OrderPlaced, OrderShipped } from './order.ts';
import { orderSchemas } from './schemas.ts';

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

/**
 * The consumer settings the caller may tune; the inbox and the dead letters
 * are the services' own (in the file), and so is the registry (`orderSchemas`).
 */
export type OrderServiceOptions = Omit<SubscriberOptions<Database>, 'inbox' | 'deadLetters' | 'schemas'>;

/** A fault to inject, for tests and demos of the dead-letter path: `service` refuses every event of `orderId`. */
export interface OrderServiceFault {
  service: ServiceName;
  orderId: string;
}

export interface OrderServices {
  bus: EventBus;
  consumers: Record<ServiceName, Consumer>;
  /** The connection the services' tables, inbox and dead letters live on. */
  database: Database;
  /** What each service did, in the order it did it, read from its tables. */
  actions(): Record<ServiceName, ServiceAction[]>;
  /** Stock on hand per sku, read from `inventory_stock`. */
  stock(): Map<string, number>;
  /** Per service, the ids of the given events it should handle (by type). */
  expected(events: readonly RecordedEvent[]): Record<ServiceName, string[]>;
  /** Polls until every service has handled each expected event; throws at the deadline. */
  waitUntilHandled(events: readonly RecordedEvent[], deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const initialStock: Record<string, number> = { kettle: 10, mug: 24, tea: 12, lamp: 3 };

/**
 * The services' tables, in the store's SQLite file. Each row names the event
 * (= message id) that caused it, its order and its correlation id. The event
 * id is deliberately not unique in them: what keeps a message's rows to one
 * set is the SQL inbox, whose mark commits in the same transaction.
 */
const schema = `
  CREATE TABLE IF NOT EXISTS inventory_stock (
    sku TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS inventory_reservations (
    reservation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    correlation_id TEXT
  );
  CREATE TABLE IF NOT EXISTS payment_charges (
    charge_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    order_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount REAL NOT NULL,
    currency TEXT NOT NULL,
    correlation_id TEXT
  );
  CREATE TABLE IF NOT EXISTS notifications (
    notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    order_id TEXT NOT NULL,
    body TEXT NOT NULL,
    correlation_id TEXT
  );
`;

/** Creates the services' tables if missing and seeds the stock once (a restart keeps what is on hand). */
export function createServiceTables(database: Database): void {
  database.transaction(() => {
    database.exec(schema);
    const seed = database.prepare('INSERT OR IGNORE INTO inventory_stock (sku, on_hand) VALUES (?, ?)');
    for (const [sku, onHand] of Object.entries(initialStock)) seed.run(sku, onHand);
  })();
}

/** What caused a row: the event (message) id and type, and the correlation id it carried. */
const causedBy = (message: Message) => ({
  eventId: message.id,
  eventType: message.type,
  correlationId: message.metadata.correlationId ?? null,
});

/**
 * The seed's event-notification picture: Inventory reserves stock and
 * Payment records a charge for each placed order, Notification writes a line
 * per placed, shipped and cancelled order. Each is an independent consumer
 * group on the bus; subscriptions start here, before the relay publishes.
 *
 * Their state lives in `database` (the store's SQLite file in the example),
 * whatever transport carries the messages. Each subscription has the SQL inbox: the
 * handler runs inside the inbox's transaction and writes through `tx`, so its
 * rows, the inbox mark and the transport's ack commit together, once per
 * message, even across a crash or a restart.
 */
export async function startOrderServices(
  transport: Transport,
  database: Database,
  consumerOptions: OrderServiceOptions = {},
  fault?: OrderServiceFault,
): Promise<OrderServices> {
  createServiceTables(database);
  // Not retryable: the event goes to the service's dead letters at once.
  const refuse = (service: ServiceName, orderId: string) => {
    if (fault?.service === service && fault.orderId === orderId) {
      throw new NonRetryableError(`${service} refuses order ${orderId} (injected fault)`);
    }
  };
  const bus = createEventBus({ transport, topic: orderEventsTopic });
  const options: SubscriberOptions<Database> = {
    ...consumerOptions,
    inbox: getSqliteInbox({ database }),
    deadLetters: getSqliteDeadLetterStore({ database }),
    // Each message is decoded before its handler: an OrderPlaced sent at version 1 arrives with its currency.
    schemas: orderSchemas,
  };

  const inventory = bus.subscribe<Database>(
    'inventory',
    serviceSubscriptions.inventory,
    (message, tx) => {
      const { orderId, items } = (message as unknown as OrderPlaced).data;
      refuse('inventory', orderId);
      const take = tx.prepare(
        `INSERT INTO inventory_stock (sku, on_hand) VALUES (@sku, -@quantity)
         ON CONFLICT (sku) DO UPDATE SET on_hand = on_hand - @quantity`,
      );
      const reserve = tx.prepare(
        `INSERT INTO inventory_reservations (event_id, event_type, order_id, sku, quantity, correlation_id)
         VALUES (@eventId, @eventType, @orderId, @sku, @quantity, @correlationId)`,
      );
      for (const { sku, quantity } of items) {
        take.run({ sku, quantity });
        reserve.run({ ...causedBy(message), orderId, sku, quantity });
      }
    },
    options,
  );

  const payment = bus.subscribe<Database>(
    'payment',
    serviceSubscriptions.payment,
    (message, tx) => {
      const { orderId, customerId, total, currency } = (message as unknown as OrderPlaced).data;
      refuse('payment', orderId);
      tx.prepare(
        `INSERT INTO payment_charges (event_id, event_type, order_id, customer_id, amount, currency, correlation_id)
         VALUES (@eventId, @eventType, @orderId, @customerId, @amount, @currency, @correlationId)`,
      ).run({ ...causedBy(message), orderId, customerId, amount: total, currency });
    },
    options,
  );

  const notification = bus.subscribe<Database>(
    'notification',
    serviceSubscriptions.notification,
    (message, tx) => {
      const event = message as unknown as OrderPlaced | OrderShipped | OrderCancelled;
      const { orderId } = event.data;
      refuse('notification', orderId);
      const body =
        event.type === 'OrderPlaced'
          ? `to ${event.data.customerId}: order placed, total ${event.data.total} ${event.data.currency}`
          : event.type === 'OrderShipped'
            ? `order shipped by ${event.data.carrier}`
            : `order cancelled (${event.data.reason})`;
      tx.prepare(
        `INSERT INTO notifications (event_id, event_type, order_id, body, correlation_id)
         VALUES (@eventId, @eventType, @orderId, @body, @correlationId)`,
      ).run({ ...causedBy(message), orderId, body });
    },
    options,
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
    database,
    actions: () => readServiceActions(database),
    stock: () => readStock(database),
    expected,
    async waitUntilHandled(events, deadlineMs = 10_000) {
      const wanted = expected(events);
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        const actions = readServiceActions(database);
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

interface ActionRow {
  event_id: string;
  event_type: string;
  order_id: string;
  correlation_id: string | null;
}

const action = (row: ActionRow, summary: string): ServiceAction => ({
  eventId: row.event_id,
  type: row.event_type,
  orderId: row.order_id,
  summary,
  correlationId: row.correlation_id ?? undefined,
});

/** What each service did, in the order it did it, from its tables (one action per event handled). */
export function readServiceActions(database: Database): Record<ServiceName, ServiceAction[]> {
  const reservations = database
    .prepare(
      `SELECT event_id, event_type, order_id, sku, quantity, correlation_id
       FROM inventory_reservations ORDER BY reservation_id`,
    )
    .all() as (ActionRow & { sku: string; quantity: number })[];
  // One action per event: its reservation rows, one per item, in order.
  const byEvent = new Map<string, { row: ActionRow; items: string[] }>();
  for (const row of reservations) {
    const entry = byEvent.get(row.event_id) ?? { row, items: [] };
    entry.items.push(`${row.quantity}× ${row.sku}`);
    byEvent.set(row.event_id, entry);
  }
  const charges = database
    .prepare(
      `SELECT event_id, event_type, order_id, customer_id, amount, currency, correlation_id
       FROM payment_charges ORDER BY charge_id`,
    )
    .all() as (ActionRow & { customer_id: string; amount: number; currency: string })[];
  const notes = database
    .prepare('SELECT event_id, event_type, order_id, body, correlation_id FROM notifications ORDER BY notification_id')
    .all() as (ActionRow & { body: string })[];
  return {
    inventory: [...byEvent.values()].map(({ row, items }) => action(row, `reserved ${items.join(', ')}`)),
    payment: charges.map((row) => action(row, `charged ${row.customer_id} ${row.amount} ${row.currency}`)),
    notification: notes.map((row) => action(row, row.body)),
  };
}

/** Stock on hand per sku, in the order the skus were first stocked. */
export function readStock(database: Database): Map<string, number> {
  const rows = database.prepare('SELECT sku, on_hand FROM inventory_stock ORDER BY rowid').all() as {
    sku: string;
    on_hand: number;
  }[];
  return new Map(rows.map((row) => [row.sku, row.on_hand]));
}

const titles: Record<ServiceName, string> = {
  inventory: 'Inventory service (reserves stock on OrderPlaced)',
  payment: 'Payment service (records a charge on OrderPlaced)',
  notification: 'Notification service (OrderPlaced, OrderShipped, OrderCancelled)',
};

const tables: Record<ServiceName, string> = {
  inventory: 'tables inventory_reservations, inventory_stock',
  payment: 'table payment_charges',
  notification: 'table notifications',
};

/** One short section per service: what it did, per order, with the correlation id it carried (read from its tables). */
export function printServices(services: OrderServices, print: (line: string) => void = console.log): void {
  const actions = services.actions();
  for (const name of serviceNames) {
    print(`${titles[name]} — consumer group "${name}" (${tables[name]}):`);
    for (const action of actions[name]) {
      print(`  order-${action.orderId}  ${action.summary}  (${action.correlationId})`);
    }
    if (name === 'inventory') {
      print(`  stock left: ${[...services.stock()].map(([sku, n]) => `${sku} ${n}`).join(', ')}`);
    }
  }
}
