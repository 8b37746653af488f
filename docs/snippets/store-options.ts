import { getPostgresEventStore } from '@factline/postgres';
import { getSqliteEventStore } from '@factline/sqlite';

/** The SQLite store with every option at its default (the values shown). */
export function sqliteWithOptions(path = 'app.db') {
  // #region sqlite
  const store = getSqliteEventStore({
    path, // a file, or ':memory:'
    synchronous: 'full', // default; 'normal' trades the last commits on power loss for speed
    busyTimeoutMs: 5000, // how long a write waits for another process's lock
    limits: { maxEventBytes: 1024 * 1024, maxStreamIdLength: 200 },
    maxBatch: 256, // most appends in one group commit
  });
  // #endregion
  return store;
}

/** The PostgreSQL store with its options (defaults except `schema`). */
export async function postgresWithOptions(connectionString: string, schema = 'factline') {
  // #region postgres
  const store = await getPostgresEventStore({
    connectionString, // e.g. 'postgres://app@127.0.0.1:5432/app'; or `pool: yourPgPool`
    schema, // default 'factline'; created when missing
    poolSize: 10, // connections of the pool the store opens
    limits: { maxEventBytes: 1024 * 1024, maxStreamIdLength: 200 },
    maxBatch: 256, // most appends in one group commit
    now: Date.now, // the clock for recordedAt
    notifyAppends: true, // NOTIFY projection runners in other processes after appends commit
    notifyIntervalMs: 10, // at most one such NOTIFY per interval
    inlineProjections: [], // read models updated inside the append's transaction (docs/projections.md)
  });
  // #endregion
  return store;
}
