import { ValidationError } from '@factline/core';
import type pg from 'pg';

/**
 * Package-internal: the client PostgreSQL handlers get (inbox handlers,
 * projection handlers, inline projections) is a handle on the transaction's
 * pool client. It is the client while the handler runs; once the handler
 * settled, its `query` refuses. The client goes back to the pool after the
 * commit, so a query from a dangling async continuation or a client kept for
 * later would otherwise run in whatever transaction its next user has open.
 */

/** What a query through an ended handle fails with: a `ValidationError` at `tx`, before anything is sent. */
export function transactionEndedError(): ValidationError {
  return new ValidationError({
    path: 'tx',
    message:
      "the handler's transaction has ended (committed or rolled back), so its client refuses further queries: await every query before the handler returns, and never keep the client for later",
  });
}

export interface ClientHandle {
  /** The handle to give the handler. */
  readonly client: pg.PoolClient;
  /** Ends the handle: its `query` (and `release`) refuse from now on. */
  end(): void;
}

type Query = (...args: unknown[]) => unknown;

/** A refused `query`, in the form the caller used: callback, submittable (a cursor, a stream) or promise. */
const refuse = (args: unknown[]): unknown => {
  const error = transactionEndedError();
  const callback = args[args.length - 1];
  if (typeof callback === 'function') {
    process.nextTick(callback, error);
    return undefined;
  }
  if (typeof (args[0] as { submit?: unknown } | null)?.submit === 'function') throw error;
  return Promise.reject(error);
};

/** A handle on `client`, live until `end()`. */
export function openClientHandle(client: pg.PoolClient): ClientHandle {
  let live = true;
  const send = client.query as Query;
  const query: Query = (...args) => (live ? send.apply(client, args) : refuse(args));
  // The pool client belongs to the store that lent it: a handler never releases it.
  const release = () => {
    throw new ValidationError({
      path: 'tx',
      message: "release() is not for handlers: the client goes back to the pool when the handler's transaction ends",
    });
  };
  const handle = new Proxy(client, {
    get(target, property) {
      if (property === 'query') return query;
      if (property === 'release') return release;
      const value = Reflect.get(target, property, target);
      // Methods run on the client itself (node-postgres keeps its state on it).
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    client: handle,
    end() {
      live = false;
    },
  };
}

/** Runs `work` with a handle on `client`, ended once `work` settled. */
export async function withClientHandle<T>(
  client: pg.PoolClient,
  work: (tx: pg.PoolClient) => T | Promise<T>,
): Promise<T> {
  const handle = openClientHandle(client);
  try {
    return await work(handle.client);
  } finally {
    handle.end();
  }
}
