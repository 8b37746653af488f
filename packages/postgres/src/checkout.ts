import type pg from 'pg';
import { toStorageError } from './pg-errors.ts';

const ignore = () => undefined;

/**
 * Takes a client from the pool for work that may leave it idle between
 * statements (a handler awaiting something else inside its transaction).
 * node-postgres reports a connection the server closes meanwhile as an
 * `'error'` event on the client, and the pool listens only to the clients it
 * holds: without a listener here, a server restart or `pg_terminate_backend`
 * at that moment would crash the process. With it, the holder's next
 * statement fails (a retryable `StorageError` once converted) and the holder
 * releases the client as broken. The listener goes with the release.
 */
export async function checkOut(pool: pg.Pool): Promise<pg.PoolClient> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw toStorageError(error);
  }
  client.on('error', ignore);
  const release = client.release;
  client.release = (error?: Error | boolean) => {
    client.removeListener('error', ignore);
    return release.call(client, error);
  };
  return client;
}
