import type { SchemaComponentVersion } from '@factline/core/adapter';
import { CliError } from '../cli-error.ts';

/**
 * Refuses a database in which one of `components` (those a command's stores
 * open, each migrating its tables as it opens) was written by an older
 * Factline. Opening it would upgrade the application's schema from an
 * operator's command, and an application still on the older Factline would
 * then refuse to start (a schema newer than it knows). Components the
 * database does not hold are not checked: the command's own checks say so.
 *
 * @example
 * refuseOlderSchema('app.db', readSqliteSchemaVersions(db), ['consumer', 'transport']);
 */
export function refuseOlderSchema(
  where: string,
  versions: readonly SchemaComponentVersion[],
  components: readonly string[],
): void {
  const behind = versions.filter((v) => components.includes(v.component) && v.version > 0 && v.version < v.latest);
  if (behind.length === 0) return;
  const list = behind.map((v) => `'${v.component}' at version ${v.version} (this CLI's: ${v.latest})`).join(', ');
  throw new CliError(
    `${where}: an older Factline wrote its schema: ${list}. The factline CLI would upgrade it, and does not change an application's schema: upgrade the application (its stores migrate as they open), or use the CLI of the application's Factline version`,
  );
}

/** The components a causal trace reads, which a tracer brings up to date when it opens. */
export const tracedComponents = ['event-store', 'transport', 'consumer', 'outbox'] as const;
