import { createConsumer, createMessage, type Message } from '@factline/core';
import { getPostgresDeadLetterStore, getPostgresInbox, getPostgresTransport } from '@factline/postgres';
import pg from 'pg';

const until = async (done: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; !done(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > end) throw new Error('timed out');
  }
};

export async function billing(connectionString: string, schema = 'app') {
  const pool = new pg.Pool({ connectionString });
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${schema}.invoices (order_id text, total numeric)`);
  // Transport, inbox and dead letters on one pool: effect, inbox mark and ack commit together.
  const transport = await getPostgresTransport({ pool, schema });
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox: await getPostgresInbox({ pool, schema }),
    deadLetters: await getPostgresDeadLetterStore({ pool, schema }),
    handler: async (message: Message, client: pg.PoolClient) => {
      const { total } = message.data as { total: number };
      // `client` is inside the inbox's open transaction.
      await client.query(`INSERT INTO ${schema}.invoices (order_id, total) VALUES ($1, $2)`, [message.key, total]);
    },
  });
  await consumer.start();
  const placed = createMessage({ type: 'OrderPlaced', key: 'order-7', data: { total: 30 } });
  await transport.publish('orders', [placed]);
  await until(() => consumer.stats().handled === 1);
  await transport.publish('orders', [placed]); // delivered again: the inbox applies it once
  await until(() => consumer.stats().duplicates === 1);
  await consumer.stop();
  const { rows } = await pool.query(`SELECT order_id, total::float8 AS total FROM ${schema}.invoices`);
  await transport.close();
  await pool.end();
  return rows; // [{ order_id: 'order-7', total: 30 }]
}
