import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import {
  type DatabaseTarget,
  type DeadLetterTarget,
  isRedisUrl,
  parseDatabaseUrl,
  parseDeadLetterUrl,
} from '../inspect/database-url.ts';
import {
  type DeadLetterOperator,
  type DeadLetterReader,
  deadLetterReaderOf,
  type Inspector,
  type ProjectionControl,
} from '../inspect/inspector.ts';
import { openRedriver, parseTransportUrl, type TransportTarget } from '../inspect/redriver.ts';
import type { CliContext } from './context.ts';

/** The flags every database command takes. */
export interface DatabaseFlags {
  db?: string;
  schema?: string;
  app?: string;
  transport?: string;
  json?: boolean;
}

/** Adds `--db` and `--schema` to the program: given before or after the command's name. */
export function addDatabaseOptions(program: Command): Command {
  return program
    .option('--db <url>', 'sqlite:./app.db (or a path) or postgres://...; default $FACTLINE_DB')
    .option('--schema <name>', 'PostgreSQL schema holding the tables (default factline)')
    .option(
      '--app <name>',
      "with a redis:// --db or a --transport (dlq commands, ui): the transport's application; default $FACTLINE_APP",
    )
    .option(
      '--transport <url>',
      'dlq commands, ui: the broker the application runs on (amqp://, nats://, redis://), for redrives of dead letters kept in --db; default $FACTLINE_TRANSPORT',
    );
}

/** Adds `--json` to a command reading the database. */
export const databaseOptions = (command: Command): Command => command.option('--json', 'print JSON for scripts');

/**
 * Sets `command`'s action: `work` gets its flags merged with the program's
 * (`--db`, `--schema`) and its parsed arguments.
 */
export function databaseAction<Flags>(command: Command, work: (flags: Flags, ...args: never[]) => Promise<void>): void {
  command.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Command;
    await (work as (flags: Flags, ...args: unknown[]) => Promise<void>)(
      self.optsWithGlobals<Flags & object>(),
      ...self.processedArgs,
    );
  });
}

/** Where the flags (or `FACTLINE_DB`) point, a SQLite path resolved from the working directory. */
export function target(flags: DatabaseFlags, context: CliContext): DatabaseTarget {
  if (flags.transport !== undefined) throw new CliError('--transport applies to the dlq commands and ui only');
  const parsed = parseDatabaseUrl(flags.db ?? context.env.FACTLINE_DB, flags.schema, flags.app);
  return parsed.kind === 'sqlite' ? { kind: 'sqlite', path: context.resolve(parsed.path) } : parsed;
}

/** `--transport`, else a non-empty `FACTLINE_TRANSPORT`. */
const transportUrl = (flags: DatabaseFlags, context: CliContext) =>
  flags.transport ?? (context.env.FACTLINE_TRANSPORT?.trim() || undefined);

/** Where the dead-letter commands (and the dashboard) read: `target`'s databases, or a Redis server and application. */
export function deadLetterTarget(flags: DatabaseFlags, context: CliContext): DeadLetterTarget {
  const db = flags.db ?? context.env.FACTLINE_DB;
  // With a broker transport, --app names its application, whatever holds the dead letters.
  const throughBroker = transportUrl(flags, context) !== undefined && !isRedisUrl(db);
  const parsed = parseDeadLetterUrl(db, flags.schema, throughBroker ? undefined : flags.app, context.env.FACTLINE_APP);
  return parsed.kind === 'sqlite' ? { kind: 'sqlite', path: context.resolve(parsed.path) } : parsed;
}

/**
 * The broker a database's dead letters are redriven through: `--transport`
 * (or `FACTLINE_TRANSPORT`) with `--app` (or `FACTLINE_APP`); undefined
 * without one (the database's SQL transport). A redis:// --db redrives
 * through its own Redis transport: an explicit `--transport` is refused there,
 * `FACTLINE_TRANSPORT` ignored.
 */
export function redriveTarget(
  flags: DatabaseFlags,
  context: CliContext,
  where: DeadLetterTarget,
): TransportTarget | undefined {
  if (where.kind === 'redis') {
    if (flags.transport !== undefined) {
      throw new CliError(
        '--transport applies to dead letters kept in a database: a redis:// --db redrives through its own Redis transport',
      );
    }
    return undefined;
  }
  const url = transportUrl(flags, context);
  return url === undefined ? undefined : parseTransportUrl(url, flags.app ?? context.env.FACTLINE_APP);
}

/** A read-only view of the database the flags name. */
export async function openInspector(flags: DatabaseFlags, context: CliContext): Promise<Inspector> {
  return openInspectorAt(target(flags, context));
}

/** A read-only view of the database `where`. */
export async function openInspectorAt(where: DatabaseTarget): Promise<Inspector> {
  return where.kind === 'sqlite'
    ? (await import('../inspect/sqlite-inspector.ts')).openSqliteInspector(where.path)
    : await (await import('../inspect/postgres-inspector.ts')).openPostgresInspector(where.url, where.schema);
}

/** The dead letters of a Redis application, read while the connection is open (`reconnect`: after a drop too). */
export async function openRedisDeadLetters(
  where: Extract<DeadLetterTarget, { kind: 'redis' }>,
  options: { reconnect?: boolean } = {},
): Promise<DeadLetterReader & { close(): Promise<void> }> {
  return (await import('../inspect/redis-dead-letters.ts')).openRedisDeadLetterReader(
    where.url,
    where.application,
    options,
  );
}

/**
 * A read-write connection for changing dead letters where the flags point (a
 * database or a Redis application); a database's redrives go through the
 * broker `redriveTarget` names, when it names one.
 */
export async function openDeadLetterOperator(flags: DatabaseFlags, context: CliContext): Promise<DeadLetterOperator> {
  const where = deadLetterTarget(flags, context);
  const through = redriveTarget(flags, context, where);
  if (where.kind === 'redis') {
    return (await import('../inspect/redis-dead-letters.ts')).openRedisDeadLetterOperator(where.url, where.application);
  }
  const redriver = through ? await openRedriver(through) : undefined;
  try {
    return where.kind === 'sqlite'
      ? (await import('../inspect/sqlite-inspector.ts')).openSqliteDeadLetterOperator(where.path, redriver)
      : await (await import('../inspect/postgres-inspector.ts')).openPostgresDeadLetterOperator(
          where.url,
          where.schema,
          redriver,
        );
  } catch (error) {
    await redriver?.close();
    throw error;
  }
}

/**
 * Runs `work` with a read-only view of the dead letters where the flags
 * point: the database's (read-only, as every read command), or a Redis
 * application's; closed afterwards.
 */
export async function withDeadLetterReader<T>(
  flags: DatabaseFlags,
  context: CliContext,
  work: (reader: DeadLetterReader) => Promise<T>,
): Promise<T> {
  const where = deadLetterTarget(flags, context);
  // A bad --transport or a missing --app fails every dlq command alike, not only a redrive.
  redriveTarget(flags, context, where);
  if (where.kind !== 'redis') {
    const inspector = await openInspectorAt(where);
    try {
      return await work(deadLetterReaderOf(inspector));
    } finally {
      await inspector.close();
    }
  }
  const reader = await openRedisDeadLetters(where);
  try {
    return await work(reader);
  } finally {
    await reader.close();
  }
}

/** Runs `work` with a read-only view of the database, closed afterwards. */
export async function withInspector<T>(
  flags: DatabaseFlags,
  context: CliContext,
  work: (inspector: Inspector) => Promise<T>,
): Promise<T> {
  const inspector = await openInspector(flags, context);
  try {
    return await work(inspector);
  } finally {
    await inspector.close();
  }
}

/** Runs `work` with a read-write connection for changing dead letters, closed afterwards. */
export async function withDeadLetterOperator<T>(
  flags: DatabaseFlags,
  context: CliContext,
  work: (operator: DeadLetterOperator) => Promise<T>,
): Promise<T> {
  const operator = await openDeadLetterOperator(flags, context);
  try {
    return await work(operator);
  } finally {
    await operator.close();
  }
}

/** Runs `work` with a read-write connection for pausing and resuming projections, closed afterwards. */
export async function withProjectionControl<T>(
  flags: DatabaseFlags,
  context: CliContext,
  work: (control: ProjectionControl) => Promise<T>,
): Promise<T> {
  const where = target(flags, context);
  const control =
    where.kind === 'sqlite'
      ? (await import('../inspect/sqlite-projection-control.ts')).openSqliteProjectionControl(where.path)
      : await (await import('../inspect/postgres-projection-control.ts')).openPostgresProjectionControl(
          where.url,
          where.schema,
        );
  try {
    return await work(control);
  } finally {
    await control.close();
  }
}

/** Parses a whole number option (`--limit 20`), refusing anything else as a usage error. */
export function integerOption(name: string, minimum = 0) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < minimum) {
      throw new CliError(`${name} must be a whole number of at least ${minimum}, got '${value}'`);
    }
    return parsed;
  };
}

/** Prints `value` as indented JSON. */
export const printJson = (context: CliContext, value: unknown) => context.stdout(JSON.stringify(value, null, 2));

/** Reports a missing thing as one line and sets exit code 1. */
export function notFound(context: CliContext, message: string): void {
  context.stderr(`factline: ${message}`);
  context.exitCode = 1;
}
