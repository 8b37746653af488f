import { StoreClosedError, ValidationError } from '@factline/core';
import type { Database } from 'better-sqlite3';
import { type Migration, migrate } from '../migrations.ts';
import { toStorageError } from '../store/sqlite-errors.ts';

export const consumerMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'consumer inbox and dead letters',
    up: `
      -- Message ids each consumer has applied, for the retention window.
      CREATE TABLE factline_inbox (
        consumer TEXT NOT NULL,
        message_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (consumer, message_id)
      ) WITHOUT ROWID;
      CREATE INDEX factline_inbox_at ON factline_inbox (at);

      -- Dead letters: the whole record as JSON, plus the columns filters use.
      CREATE TABLE factline_dead_letters (
        id TEXT PRIMARY KEY,
        consumer TEXT NOT NULL,
        topic TEXT NOT NULL,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        dead_lettered_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        record TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX factline_dead_letters_list ON factline_dead_letters (consumer, state, dead_lettered_at);
      -- One live dead letter per consumer and message: a consumer that dies
      -- between recording it and the ack records it once.
      CREATE UNIQUE INDEX factline_dead_letters_live ON factline_dead_letters (consumer, message_id)
        WHERE state = 'dead';
    `,
  },
  {
    version: 2,
    description: 'inbox marks by message id and dead letters by correlation id, for traceOperation',
    up: `
      CREATE INDEX factline_inbox_message ON factline_inbox (message_id);
      CREATE INDEX factline_dead_letters_correlation
        ON factline_dead_letters (json_extract(record, '$.message.metadata.correlationId'));
    `,
  },
  {
    version: 3,
    description: 'inbox marks pruned per consumer',
    up: `
      CREATE INDEX factline_inbox_consumer_at ON factline_inbox (consumer, at);
      DROP INDEX factline_inbox_at;
    `,
  },
  {
    version: 4,
    description: 'one live dead letter per consumer, topic and message',
    up: `
      -- A group consuming two topics may dead-letter one message on both: a record each.
      DROP INDEX factline_dead_letters_live;
      CREATE UNIQUE INDEX factline_dead_letters_live ON factline_dead_letters (consumer, topic, message_id)
        WHERE state = 'dead';
    `,
  },
];

export interface SqliteConsumerStoreOptions {
  /** The connection the handler writes through (e.g. an event store's or a transport's `.database`). */
  database: Database;
}

/** The connection of an inbox or a dead-letter store, its tables migrated (component `consumer`). */
export function openConsumerTables(options: SqliteConsumerStoreOptions): Database {
  const db = options?.database;
  if (!db || typeof db.prepare !== 'function') {
    throw new ValidationError({ path: 'database', message: 'must be a better-sqlite3 connection' });
  }
  try {
    migrate(db, 'consumer', consumerMigrations);
  } catch (error) {
    throw toStorageError(error);
  }
  return db;
}

/** Runs `work` on `db`: `StoreClosedError` naming `what` once the connection closed, storage errors as such. */
export function guardConsumerStore<T>(db: Database, work: () => T, what: 'inbox' | 'dead-letter store'): T {
  if (!db.open) throw new StoreClosedError(what);
  try {
    return work();
  } catch (error) {
    throw toStorageError(error);
  }
}
