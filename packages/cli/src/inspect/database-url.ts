import { redactUrl } from '@factline/core/adapter';
import { CliError } from '../cli-error.ts';

/** Where the CLI reads: a SQLite file, or a PostgreSQL database and the schema holding Factline's tables. */
export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; schema: string };

/** Where `factline dlq` reads: a database, or the Redis server of an application on the Redis transport. */
export type DeadLetterTarget = DatabaseTarget | { kind: 'redis'; url: string; application: string };

/** A `redis://` or `rediss://` URL. */
export const isRedisUrl = (url: string | undefined) => url !== undefined && /^rediss?:\/\//i.test(url);

/** The URL with its secrets hidden, for messages (`@factline/core/adapter`'s). */
export { redactUrl };

/**
 * Reads `--db` (or `FACTLINE_DB`): `sqlite:./orders.db`, a bare file path, or
 * `postgres://...` / `postgresql://...` (the schema from `--schema`, default
 * `factline`). `app` is the `--app` flag, refused here: it names the
 * application of a transport (a redis:// --db, or a `--transport`).
 *
 * @example
 * parseDatabaseUrl('sqlite:./orders.db'); // { kind: 'sqlite', path: './orders.db' }
 */
export function parseDatabaseUrl(url: string | undefined, schema?: string, app?: string): DatabaseTarget {
  if (url === undefined || url.trim() === '') {
    throw new CliError('no database: give --db sqlite:./app.db or --db postgres://..., or set FACTLINE_DB');
  }
  if (isRedisUrl(url)) {
    throw new CliError(
      `--db ${redactUrl(url)}: Redis holds an application's dead letters only: 'factline dlq' reads them (with --app); this command needs a sqlite: path or postgres:// URL`,
    );
  }
  if (app !== undefined) throw new CliError('--app applies to a redis:// --db, or with a --transport, only');
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url, schema: schema ?? 'factline' };
  if (schema !== undefined) throw new CliError('--schema applies to a postgres:// database only');
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') : url;
  if (path === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new CliError(`--db ${redactUrl(url)}: not a sqlite: path or postgres:// URL`);
  }
  return { kind: 'sqlite', path };
}

/**
 * Reads `--db` for the dead-letter commands: what `parseDatabaseUrl` reads,
 * or `redis://...` / `rediss://...` with the application (the `--app` flag
 * `app`, else `FACTLINE_APP` given as `defaultApp`: the Redis transport's
 * `application` option, the prefix of its keys). `FACTLINE_APP` set for a
 * Redis application is ignored with a database.
 *
 * @example
 * parseDeadLetterUrl('redis://127.0.0.1:6379', undefined, 'shop'); // { kind: 'redis', url: 'redis://127.0.0.1:6379', application: 'shop' }
 */
export function parseDeadLetterUrl(
  url: string | undefined,
  schema?: string,
  app?: string,
  defaultApp?: string,
): DeadLetterTarget {
  if (url === undefined || !isRedisUrl(url)) return parseDatabaseUrl(url, schema, app);
  if (schema !== undefined) throw new CliError('--schema applies to a postgres:// database only');
  const application = app ?? defaultApp;
  if (application === undefined || application.trim() === '') {
    throw new CliError(
      "a redis:// --db needs the application: give --app <name> (the Redis transport's application option) or set FACTLINE_APP",
    );
  }
  return { kind: 'redis', url, application };
}
