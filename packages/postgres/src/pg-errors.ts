import { isFactlineError, StorageError, TimeoutError } from '@factline/core';

/**
 * SQLSTATE classes and codes after which the same call may succeed when made
 * again: lost or refused connections, a server shutting down or starting,
 * serialization failures and deadlocks, too many connections.
 */
const RETRYABLE_CLASSES = ['08', '57', '40', '53'];
const RETRYABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/** True when the failure came from the connection rather than from the statement. */
export function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string') {
    if (RETRYABLE_NODE_CODES.has(code)) return true;
    if (code.startsWith('08') || code.startsWith('57')) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    message,
  );
}

/** Factline errors pass through; driver errors become a `StorageError` (retryable when trying again may work). */
export function toStorageError(error: unknown): unknown {
  if (isFactlineError(error)) return error;
  // node-postgres's pool ran out of its connectionTimeoutMillis: every connection stayed busy.
  if (error instanceof Error && /timeout exceeded when trying to connect/i.test(error.message)) {
    return new TimeoutError(
      'no connection of the pool came free within its connectionTimeoutMillis; give the pool more connections, or see what holds them',
    );
  }
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  const retryable =
    isConnectionFailure(error) ||
    (typeof code === 'string' && code.length === 5 && RETRYABLE_CLASSES.includes(code.slice(0, 2)));
  return new StorageError(`PostgreSQL failed: ${message}${typeof code === 'string' ? ` (${code})` : ''}`, {
    cause: error,
    retryable,
  });
}

/**
 * A clear error when a statement met no table where a component's tables
 * should be (SQLSTATE 42P01: the migrations never ran in that database or
 * schema, or the connection is to another database); `undefined` otherwise.
 */
export function missingTablesError(error: unknown, component: string, howToCreate: string): StorageError | undefined {
  if ((error as { code?: unknown })?.code !== '42P01') return undefined;
  const detail = error instanceof Error ? ` (${error.message})` : '';
  return new StorageError(
    `The ${component}'s tables are missing in the database of this connection${detail}: ${howToCreate}`,
    { cause: error, retryable: false },
  );
}
