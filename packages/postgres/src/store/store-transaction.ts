import { StorageError } from '@factline/core';
import type pg from 'pg';
import { checkOut } from '../checkout.ts';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';

/**
 * What a transaction whose statement failed inside caller code tells: the code
 * caught the error and went on, so PostgreSQL aborted the transaction, and its
 * `COMMIT` rolled everything back (answering `ROLLBACK`, not an error).
 */
export const ABORTED_BY_CAUGHT_FAILURE =
  'a statement failed in the transaction and the code that sent it caught the error and went on: PostgreSQL aborted the transaction, and nothing written in it was committed (rethrow the error, or use a savepoint of your own)';

/** SQLSTATE 25P02: a statement sent in a transaction a failed statement aborted. */
export const isInFailedTransaction = (error: unknown): boolean => (error as { code?: unknown })?.code === '25P02';

/**
 * Commits the transaction open on `client`; throws when PostgreSQL rolled it
 * back instead (a statement in it had failed): `COMMIT` answers `ROLLBACK`
 * then, without an error, and nothing of it was stored.
 */
export async function commitOrThrow(client: pg.PoolClient, aborted: () => unknown): Promise<void> {
  const commit = await client.query('COMMIT');
  if (commit.command === 'ROLLBACK') throw aborted();
}

/**
 * Runs `work` in a transaction on a client of its own: committed when `work`
 * resolves, rolled back when it throws (the error then as a `StorageError`
 * unless it is a Factline error). A transaction that a statement failed in
 * (code that caught the error and went on) is not committed: it rejects with
 * a `StorageError` saying so. A client whose connection broke is destroyed,
 * not returned to the pool.
 */
export async function inStoreTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await checkOut(pool);
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await commitOrThrow(client, () => new StorageError(ABORTED_BY_CAUGHT_FAILURE));
    return result;
  } catch (error) {
    broken = isConnectionFailure(error);
    if (!broken) await client.query('ROLLBACK').catch(() => undefined);
    throw toStorageError(error);
  } finally {
    client.release(broken);
  }
}
