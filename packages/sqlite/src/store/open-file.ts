import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StorageError, ValidationError } from '@factline/core';
import Sqlite, { type Database } from 'better-sqlite3';

/** Whether `path` names no file on disk (an in-memory or temporary database, or a `file:` URI). */
const isFileless = (path: string) => path === '' || path === ':memory:' || path.startsWith('file:');

/**
 * Opens a better-sqlite3 connection on `path`, failing with an error that
 * names the path: a `ValidationError` when its directory does not exist
 * (SQLite creates the file, never its directory), a `StorageError` when the
 * driver cannot open it for another reason.
 */
export function openFile(path: string): Database {
  if (!isFileless(path)) {
    const directory = dirname(resolve(path));
    if (!existsSync(directory)) {
      throw new ValidationError({
        path: 'path',
        message: `'${path}' cannot be opened: its directory '${directory}' does not exist (create it first)`,
      });
    }
  }
  try {
    return new Sqlite(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StorageError(`SQLite could not open '${path}': ${reason}`, { cause: error, retryable: false });
  }
}
