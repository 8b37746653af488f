import { StorageError, ValidationError } from '@factline/core';
import pg from 'pg';
import { checkOut } from './checkout.ts';
import { toStorageError } from './pg-errors.ts';
import { boundConnectionWaits, DEFAULT_CONNECTION_WAIT_MS } from './pool-ledger.ts';

/** One step of a component's schema. `up` gets the quoted schema name and returns SQL. */
export interface PostgresMigration {
  version: number;
  description: string;
  up: (schema: string) => string;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Checks a schema name from configuration and returns it quoted. Only plain
 * lower-case identifiers are accepted, so the name never needs escaping and
 * no configuration value can change the meaning of a statement.
 */
export function quoteSchema(schema: unknown): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new ValidationError({
      path: 'schema',
      message: 'must be a lower-case SQL identifier: a-z, 0-9 and _, not starting with a digit, at most 63 characters',
    });
  }
  return `"${schema}"`;
}

/**
 * Brings `component`'s tables in `schema` up to date, in one transaction.
 * Two processes starting at once are serialized by a transaction-level
 * advisory lock taken before anything else (even `CREATE SCHEMA`), so each
 * step runs once; the second process then finds nothing to do. Steps only add
 * (tables, columns, indexes, functions); none drops data. A database whose
 * schema is newer than this code is refused rather than touched.
 */
export async function migratePostgres(
  pool: pg.Pool,
  schema: string,
  component: string,
  migrations: readonly PostgresMigration[],
): Promise<void> {
  quoteSchema(schema);
  const client = await checkOut(pool);
  let failed = false;
  try {
    await client.query('BEGIN');
    await applyMigrations(client, schema, component, migrations);
    await client.query('COMMIT');
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw toStorageError(error);
  } finally {
    client.release(failed);
  }
}

/**
 * The steps of `migratePostgres` on a client inside a transaction the caller
 * holds (an inline projection's `init`): the advisory lock, the schema, the
 * component's steps not yet applied.
 */
export async function applyMigrations(
  client: Pick<pg.PoolClient, 'query'>,
  schema: string,
  component: string,
  migrations: readonly PostgresMigration[],
): Promise<void> {
  const quoted = quoteSchema(schema);
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`factline-migrations:${schema}`]);
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${quoted}.migrations (
    component text NOT NULL,
    version integer NOT NULL,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
  )`);
  const { rows } = await client.query<{ version: number }>(
    `SELECT COALESCE(MAX(version), 0)::int AS version FROM ${quoted}.migrations WHERE component = $1`,
    [component],
  );
  const current = rows[0]?.version ?? 0;
  if (current > latest) {
    throw new StorageError(
      `The database's '${component}' schema in ${quoted} is at version ${current}, newer than this Factline knows (${latest}); upgrade Factline`,
    );
  }
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    await client.query(migration.up(quoted));
    await client.query(`INSERT INTO ${quoted}.migrations (component, version, description) VALUES ($1, $2, $3)`, [
      component,
      migration.version,
      migration.description,
    ]);
  }
}

export interface MigratedPoolOptions {
  /** Given: used as it is, never ended here. */
  pool?: pg.Pool | undefined;
  connectionString?: string | undefined;
  /** Connections of a pool opened here. */
  poolSize: number;
  schema: string;
  component: string;
  migrations: readonly PostgresMigration[];
}

/**
 * The pool a port works on, with its component's tables migrated: the
 * caller's `pool`, or one opened from `connectionString` (with an `'error'`
 * listener: an idle connection the server closed is dropped and replaced on
 * next use instead of crashing the process). A pool opened here is ended
 * again when the migration fails. `own`: the caller must end it on close.
 */
export async function migratedPool(options: MigratedPoolOptions): Promise<{ pool: pg.Pool; own: boolean }> {
  if (options.pool === undefined && typeof options.connectionString !== 'string') {
    throw new ValidationError({ path: 'connectionString', message: 'give a connection string or a pg Pool' });
  }
  const own = options.pool === undefined;
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize,
      application_name: 'factline',
      // Nothing waits for a connection forever: past this, a TimeoutError.
      connectionTimeoutMillis: DEFAULT_CONNECTION_WAIT_MS,
    });
  if (own) pool.on('error', () => undefined);
  boundConnectionWaits(pool);
  try {
    await migratePostgres(pool, options.schema, options.component, options.migrations);
  } catch (error) {
    if (own) await pool.end().catch(() => undefined);
    throw error;
  }
  return { pool, own };
}
