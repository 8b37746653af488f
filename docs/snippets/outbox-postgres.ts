import type { Transport } from '@factline/core';
import { getPostgresOutbox, startPostgresOutboxRelay } from '@factline/postgres';
import type pg from 'pg';

/** Writes an order row and its message in one transaction; resolves to the relay publishing it (stop it). */
export async function postgresOutbox(
  connectionString: string,
  schema: string,
  client: pg.ClientBase,
  transport: Transport,
) {
  await client.query('CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, total numeric)');
  // #region outbox
  const outbox = await getPostgresOutbox({ connectionString, schema }); // its table: <schema>.outbox
  await client.query('BEGIN');
  await client.query('INSERT INTO orders (id, total) VALUES ($1, $2)', ['o-1', 30]);
  await outbox.enqueue(client, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]);
  await client.query('COMMIT');
  const relay = await startPostgresOutboxRelay(outbox, transport); // one active relay across processes
  // #endregion
  return { outbox, relay };
}
