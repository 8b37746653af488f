import { TimeoutError } from '@factline/core';
import type pg from 'pg';
import { toStorageError } from './pg-errors.ts';
import { connectionWaitMs, ledgerOf, poolMax } from './pool-ledger.ts';

const ignore = () => undefined;

/**
 * `pool.connect()`, bounded: past the pool's `connectionTimeoutMillis` (or
 * 30 s when it has none) a `TimeoutError` naming the pool's size. A
 * connection handed over after that goes straight back to the pool.
 */
export function connectBounded(pool: pg.Pool): Promise<pg.PoolClient> {
  const waitMs = connectionWaitMs(pool);
  const timeout = () =>
    new TimeoutError(
      `no connection of the pool (max ${poolMax(pool)}) came free within ${waitMs} ms; give the pool more connections, or see what holds them`,
    );
  return new Promise<pg.PoolClient>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(timeout());
    }, waitMs);
    pool.connect().then(
      (client) => {
        clearTimeout(timer);
        if (late) client.release();
        else resolve(client);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (late) return;
        // The pool's own connectionTimeoutMillis ran out first.
        reject(/timeout exceeded when trying to connect/i.test((error as Error)?.message ?? '') ? timeout() : error);
      },
    );
  });
}

/**
 * Takes a client from the pool for work that may leave it idle between
 * statements (a handler awaiting something else inside its transaction).
 * node-postgres reports a connection the server closes meanwhile as an
 * `'error'` event on the client, and the pool listens only to the clients it
 * holds: without a listener here, a server restart or `pg_terminate_backend`
 * at that moment would crash the process. With it, the holder's next
 * statement fails (a retryable `StorageError` once converted) and the holder
 * releases the client as broken. The listener goes with the release. The
 * wait for a connection is bounded (see `connectBounded`).
 */
export async function checkOut(pool: pg.Pool): Promise<pg.PoolClient> {
  let client: pg.PoolClient;
  try {
    client = await connectBounded(pool);
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

/**
 * `checkOut` for work that holds the connection while the caller's code runs
 * (a handler's transaction, a projection batch): it first takes a slot of the
 * pool's ledger, so such holders never take the pool's last connection, the
 * one a handler's own reads need. The release gives the slot back.
 */
export async function checkOutHeld(pool: pg.Pool, what: string): Promise<pg.PoolClient> {
  const ledger = ledgerOf(pool);
  await ledger.acquire(what);
  let client: pg.PoolClient;
  try {
    client = await checkOut(pool);
  } catch (error) {
    ledger.release();
    throw error;
  }
  const release = client.release;
  let released = false;
  client.release = (error?: Error | boolean) => {
    if (!released) {
      released = true;
      ledger.release();
    }
    return release.call(client, error);
  };
  return client;
}
