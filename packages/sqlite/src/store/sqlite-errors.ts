import { isFactlineError, StorageError } from '@factline/core';

const RETRYABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_TIMEOUT']);

/** Factline errors pass through; driver errors become a `StorageError` (retryable when the database was busy). */
export function toStorageError(error: unknown): unknown {
  if (isFactlineError(error)) return error;
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  return new StorageError(`SQLite failed: ${message}`, {
    cause: error,
    retryable: typeof code === 'string' && RETRYABLE.has(code),
  });
}
