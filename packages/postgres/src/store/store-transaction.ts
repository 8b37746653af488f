import type pg from 'pg';
import { checkOut } from '../checkout.ts';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';

/**
 * Runs `work` in a transaction on a client of its own: committed when `work`
 * resolves, rolled back when it throws (the error then as a `StorageError`
 * unless it is a Factline error). A client whose connection broke is
 * destroyed, not returned to the pool.
 */
export async function inStoreTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await checkOut(pool);
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = isConnectionFailure(error);
    if (!broken) await client.query('ROLLBACK').catch(() => undefined);
    throw toStorageError(error);
  } finally {
    client.release(broken);
  }
}
