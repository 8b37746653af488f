import {
  type Consumer,
  createConsumer,
  createEventBus,
  createMessage,
  defaultRetryPolicy,
  defineEventRelay,
  type EventStore,
  type Message,
  NonRetryableError,
  runInMessageContext,
  type Transport,
} from '@factline/core';
import {
  getSqliteDeadLetterStore,
  getSqliteInbox,
  getSqliteOutbox,
  type SqliteEventStore,
  type SqliteTransport,
  startSqliteOutboxRelay,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

/** Appends an event and builds a message inside `incoming`'s context; resolves to the message. */
export async function correlate(store: EventStore, incoming: Message) {
  // #region context
  const next = await runInMessageContext(incoming, async () => {
    await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }]); // metadata gets correlationId + causationId
    return createMessage({ type: 'ReserveStock', data: { sku: 'tea' } }); // same correlation, caused by `incoming`
  });
  // #endregion
  return next;
}

/** Publishes the store's `OrderPlaced` events to `orders`; resolves to the runner (stop it). */
export async function relayEvents(store: SqliteEventStore, transport: Transport) {
  // #region relay
  const relay = defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] });
  const runner = await startSqliteProjections(store, [relay]); // or startPostgresProjections; one active relay on both
  // #endregion
  return runner;
}

/** Writes an order row and its message in one transaction; resolves to the relay publishing it (stop it). */
export function sqliteOutbox(db: Database, transport: Transport) {
  db.exec('CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, total REAL)');
  // #region outbox
  const outbox = getSqliteOutbox({ database: db });
  db.transaction(() => {
    db.prepare('INSERT INTO orders (id, total) VALUES (?, ?)').run('o-1', 30);
    outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]);
  })();
  const relay = startSqliteOutboxRelay(outbox, transport);
  // #endregion
  return relay;
}

export interface Services {
  reserve(data: unknown): Promise<void>;
  charge(data: unknown): Promise<void>;
  notify(message: Message): Promise<void>;
}

/** Three groups on one bus, then one publish; resolves to the bus (stop it). */
export async function eventBus(transport: Transport, { reserve, charge, notify }: Services) {
  // #region bus
  const bus = createEventBus({ transport, topic: 'order-events' });
  bus.subscribe('inventory', ['OrderPlaced'], async (message) => reserve(message.data));
  bus.subscribe('payment', ['OrderPlaced'], async (message) => charge(message.data));
  bus.subscribe('notification', ['OrderPlaced', 'OrderShipped', 'OrderCancelled'], notify);
  await bus.start();
  await bus.publish('OrderPlaced', { orderId: '1001' }); // or let a relay publish the store's events
  // #endregion
  return bus;
}

/** A bus subscriber writing its rows through the SQLite inbox's transaction; resolves to the bus (stop it). */
export async function busWithInbox(transport: SqliteTransport) {
  transport.database.exec('CREATE TABLE IF NOT EXISTS payment_charges (event_id TEXT, order_id TEXT, amount REAL)');
  const bus = createEventBus({ transport, topic: 'order-events' });
  // #region bus-inbox
  const inbox = getSqliteInbox({ database: transport.database });
  bus.subscribe(
    'payment',
    ['OrderPlaced'],
    (message, db) => {
      const { orderId, total } = message.data as { orderId: string; total: number };
      db.prepare('INSERT INTO payment_charges (event_id, order_id, amount) VALUES (?, ?, ?)').run(
        message.id,
        orderId,
        total,
      );
    },
    { inbox, deadLetters: getSqliteDeadLetterStore({ database: transport.database }) },
  );
  // #endregion
  await bus.start();
  return bus;
}

/** The inventory consumer: unknown skus go straight to the dead letters. Started; stop it. */
export async function inventory(transport: Transport, reserve: (data: unknown) => Promise<void>): Promise<Consumer> {
  const valid = (message: Message) => (message.data as { sku?: string }).sku !== 'unknown';
  // #region consumer
  const stock = createConsumer({
    name: 'inventory', // the consumer group; also names its inbox and dead letters
    topic: 'orders',
    transport,
    concurrency: 8, // keys handled at once
    retryPolicy: defaultRetryPolicy(), // 2 immediate retries, then 1 s, 5 s, 30 s (±20%), then dead-letter
    handler: async (message) => {
      if (!valid(message)) throw new NonRetryableError('unknown sku'); // straight to the dead-letter queue
      await reserve(message.data);
    },
  });
  await stock.start();
  // #endregion
  return stock;
}

/** Lists, shows, redrives and discards `stock`'s dead letters of the last hour. */
export async function handleDeadLetters(stock: Consumer) {
  const since = new Date(Date.now() - 3_600_000);
  // #region dead-letters
  const [first] = await stock.deadLetters.list({ type: 'ReserveStock', error: 'unknown sku', since });
  const record = first && (await stock.deadLetters.show(first.id)); // the original envelope, error, attempts, times
  const redriven = record ? await stock.deadLetters.redrive(record.id) : 0; // or a list of ids, or a filter
  const discarded = await stock.deadLetters.discard({ error: 'TypeError' });
  // #endregion
  return { record, redriven, discarded };
}
