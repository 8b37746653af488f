import { CliError } from '../cli-error.ts';

/** Where the CLI reads: a SQLite file, or a PostgreSQL database and the schema holding Factline's tables. */
export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; schema: string };

/**
 * Reads `--db` (or `FACTLINE_DB`): `sqlite:./orders.db`, a bare file path, or
 * `postgres://...` / `postgresql://...` (the schema from `--schema`, default
 * `factline`).
 *
 * @example
 * parseDatabaseUrl('sqlite:./orders.db'); // { kind: 'sqlite', path: './orders.db' }
 */
export function parseDatabaseUrl(url: string | undefined, schema?: string): DatabaseTarget {
  if (url === undefined || url.trim() === '') {
    throw new CliError('no database: give --db sqlite:./app.db or --db postgres://..., or set FACTLINE_DB');
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url, schema: schema ?? 'factline' };
  if (schema !== undefined) throw new CliError('--schema applies to a postgres:// database only');
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') : url;
  if (path === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new CliError(`--db ${url}: not a sqlite: path or postgres:// URL`);
  }
  return { kind: 'sqlite', path };
}
