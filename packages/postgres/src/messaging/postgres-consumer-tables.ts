import { StoreClosedError } from '@factline/core';
import { assertIntegerOption } from '@factline/core/adapter';
import type pg from 'pg';
import { migratedPool, type PostgresMigration, quoteSchema } from '../migrations.ts';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';

export const consumerMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'consumer inbox and dead letters',
    up: (s) => `
      -- Message ids each consumer has applied, for the retention window.
      CREATE TABLE ${s}.inbox (
        consumer text NOT NULL,
        message_id text NOT NULL,
        at timestamptz NOT NULL,
        PRIMARY KEY (consumer, message_id)
      );
      CREATE INDEX inbox_at ON ${s}.inbox (at);

      -- Dead letters: the whole record as JSON, plus the columns filters use.
      CREATE TABLE ${s}.dead_letters (
        id text PRIMARY KEY,
        consumer text NOT NULL,
        topic text NOT NULL,
        message_id text NOT NULL,
        message_type text NOT NULL,
        error_type text NOT NULL,
        error_message text NOT NULL,
        dead_lettered_at timestamptz NOT NULL,
        state text NOT NULL,
        record json NOT NULL
      );
      CREATE INDEX dead_letters_list ON ${s}.dead_letters (consumer, state, dead_lettered_at);
      -- One live dead letter per consumer and message: a consumer that dies
      -- between recording it and the ack records it once.
      CREATE UNIQUE INDEX dead_letters_live ON ${s}.dead_letters (consumer, message_id) WHERE state = 'dead';
    `,
  },
  {
    version: 2,
    description: 'inbox marks by message id and dead letters by correlation id, for traceOperation',
    up: (s) => `
      CREATE INDEX inbox_message ON ${s}.inbox (message_id);
      CREATE INDEX dead_letters_correlation ON ${s}.dead_letters ((record->'message'->'metadata'->>'correlationId'));
    `,
  },
  {
    version: 3,
    description: 'inbox marks pruned per consumer',
    up: (s) => `
      CREATE INDEX inbox_consumer_at ON ${s}.inbox (consumer, at);
      DROP INDEX ${s}.inbox_at;
    `,
  },
  {
    version: 4,
    description: 'one live dead letter per consumer, topic and message',
    up: (s) => `
      -- A group consuming two topics may dead-letter one message on both: a record each.
      DROP INDEX ${s}.dead_letters_live;
      CREATE UNIQUE INDEX dead_letters_live ON ${s}.dead_letters (consumer, topic, message_id) WHERE state = 'dead';
    `,
  },
];

export interface PostgresConsumerStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/app`. Give this or `pool`. */
  connectionString?: string;
  /** The pool the handler's writes should use (e.g. a store's or a transport's `.pool`); never ended here. */
  pool?: pg.Pool;
  /** The schema holding the tables; created when missing. Default `'factline'`. */
  schema?: string;
  /** Connections of the pool opened from `connectionString`. Default 10. */
  poolSize?: number;
}

/** An inbox's or a dead-letter store's pool and tables (component `consumer`), and its statements' runner. */
export interface ConsumerTables {
  pool: pg.Pool;
  /** The quoted schema. */
  s: string;
  schema: string;
  closed(): boolean;
  /** Runs a statement under its prepared name: `StoreClosedError` once closed, storage errors as `StorageError`. */
  query<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>>;
  /** Ends the pool if it was opened here. */
  close(): Promise<void>;
}

/** Opens (or takes) the pool and migrates the consumer tables. */
export async function openConsumerTables(
  options: PostgresConsumerStoreOptions,
  what: 'inbox' | 'dead-letter store',
): Promise<ConsumerTables> {
  const schema = options?.schema ?? 'factline';
  const s = quoteSchema(schema);
  const poolSize = assertIntegerOption(options?.poolSize, 'poolSize', 1) ?? 10;
  const { pool, own } = await migratedPool({
    pool: options?.pool,
    connectionString: options?.connectionString,
    poolSize,
    schema,
    component: 'consumer',
    migrations: consumerMigrations,
  });
  let closed = false;
  return {
    pool,
    s,
    schema,
    closed: () => closed,
    query: async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) => {
      if (closed) throw new StoreClosedError(what);
      try {
        return await pool.query<R>({ name: statementName(schema, `consumer-${name}`), text, values });
      } catch (error) {
        throw toStorageError(error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (own) await pool.end().catch(() => undefined);
    },
  };
}
