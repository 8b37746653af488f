import { type Consumer, createConsumer } from '@factline/core';
import { getNatsTransport, type NatsTransport } from '@factline/nats';
import { getSqliteDeadLetterStore, getSqliteInbox } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

/** A billing consumer on NATS JetStream whose inbox, effects and dead letters live in `db`. */
export async function natsBilling(
  url: string,
  application: string,
  db: Database,
): Promise<{ transport: NatsTransport; consumer: Consumer }> {
  db.exec('CREATE TABLE IF NOT EXISTS invoices (order_id TEXT PRIMARY KEY, total REAL)');
  // #region transport
  const transport = await getNatsTransport({
    url, // nats://user:password@host:4222 (several: comma-separated)
    application, // names the stream and the claim bucket
    partitions: 4, // durable consumers per (topic, group); a key always lands in the same one
    maxDeliver: 20, // the consumers' max_deliver: past it the message goes to the dead letters
    ackWaitMs: 30_000, // the consumers' ack_wait: a dead process's messages come back after it
    deadLetters: getSqliteDeadLetterStore({ database: db }), // consumers' default store
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
  await consumer.start(); // creates the group's durable consumers: from now on it gets every message
  // #endregion
  return { transport, consumer };
}
