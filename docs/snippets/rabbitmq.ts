import { type Consumer, createConsumer } from '@factline/core';
import { getRabbitTransport, type RabbitTransport } from '@factline/rabbitmq';
import { getSqliteDeadLetterStore, getSqliteInbox } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

/** A billing consumer on RabbitMQ whose inbox, effects and dead letters live in `db`. */
export async function rabbitBilling(
  url: string,
  application: string,
  db: Database,
): Promise<{ transport: RabbitTransport; consumer: Consumer }> {
  db.exec('CREATE TABLE IF NOT EXISTS invoices (order_id TEXT PRIMARY KEY, total REAL)');
  // #region transport
  const transport = await getRabbitTransport({
    url, // amqp://user:password@host:5672/vhost
    application, // names the exchange and every queue
    partitions: 4, // queues per (topic, group); a key always lands in the same one
    deliveryLimit: 20, // x-delivery-limit: past it the broker dead-letters the message
    deadLetters: getSqliteDeadLetterStore({ database: db }), // consumers' default store, and the broker's
  });
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox: getSqliteInbox({ database: db }), // the mark commits with the handler's writes
    maxRetries: 3,
    retryDelay: [1000, 5000, 30_000],
    handler: (message, tx) => {
      const { orderId, total } = message.data as { orderId: string; total: number };
      tx.prepare('INSERT INTO invoices (order_id, total) VALUES (?, ?)').run(orderId, total);
    },
  });
  await consumer.start(); // declares the group's queues: from now on it gets every message
  // #endregion
  return { transport, consumer };
}
