import { ValidationError } from '@factline/core';
import { toStorageError } from '../pg-errors.ts';

/** What the guard reads of a client: node-postgres clients report their transaction status. */
interface GuardedClient {
  query(config: { text: string }): Promise<unknown>;
  /** `'I'` idle, `'T'` in a transaction, `'E'` in a failed one, as of the last ReadyForQuery. */
  getTransactionStatus?(): 'I' | 'T' | 'E' | null;
  connect?: unknown;
  release?: unknown;
  totalCount?: unknown;
}

// SQLSTATE 25P01: SAVEPOINT outside a transaction block.
const NO_ACTIVE_TRANSACTION = '25P01';
const PROBE = 'factline_outbox_probe';

const outsideTransaction = () =>
  new ValidationError({
    path: 'client',
    message:
      'is not inside a transaction (run BEGIN on it first): the messages would commit on their own, apart from your rows',
  });

/**
 * Refuses a pool, and a client outside a transaction, for a write that must
 * share the caller's transaction. A node-postgres client in a transaction
 * says so (`'T'`) for free; when it says idle (or cannot say), a `SAVEPOINT`
 * decides, since PostgreSQL refuses one outside a transaction block — so a
 * `BEGIN` queued but not yet answered is still seen.
 */
export async function assertInTransaction(client: GuardedClient): Promise<void> {
  // A pool runs each query on whichever connection is free, in autocommit.
  if (typeof client.connect === 'function' && typeof client.release !== 'function' && 'totalCount' in client) {
    throw new ValidationError({
      path: 'client',
      message:
        'is a pg Pool: its queries run outside your transaction; pass the client you ran BEGIN on (from pool.connect())',
    });
  }
  const status = typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : null;
  // 'E': the insert fails as any statement of an aborted transaction does, with the server's error.
  if (status === 'T' || status === 'E') return;
  try {
    await client.query({ text: `SAVEPOINT ${PROBE}` });
  } catch (error) {
    if ((error as { code?: unknown }).code === NO_ACTIVE_TRANSACTION) throw outsideTransaction();
    throw toStorageError(error);
  }
  try {
    await client.query({ text: `RELEASE SAVEPOINT ${PROBE}` });
  } catch (error) {
    throw toStorageError(error);
  }
}
