import type pg from 'pg';

/** One statement of a pipeline: a statement prepared on the connection and its parameters. */
export interface PipelinedStatement {
  readonly name: string;
  readonly values: readonly (string | number | null)[];
}

/** A statement to prepare: its name and text. */
export interface StatementToPrepare {
  readonly name: string;
  readonly text: string;
}

const toParameter = (value: string | number | null): string | null => (value === null ? null : String(value));

/**
 * The message handlers node-postgres calls on the query it is running (the
 * `Submittable` interface that pg-cursor and pg-query-stream implement too).
 * After an error the client stops routing to the query, so it settles there.
 */
abstract class Submission<T> implements pg.Submittable {
  readonly promise: Promise<T>;
  private resolve!: (value: T) => void;
  private reject!: (error: unknown) => void;
  private settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  abstract submit(connection: pg.Connection): void;
  protected abstract result(): T;

  handleRowDescription(): void {}
  handleDataRow(_message: { fields: (string | null)[] }): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}

  handleError(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(error);
  }

  handleReadyForQuery(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(this.result());
  }
}

/**
 * Several prepared statements sent at once and closed by one Sync: one round
 * trip, and one implicit transaction (it commits at the Sync, when no
 * statement failed). The server runs them in order, each with a fresh
 * snapshot (READ COMMITTED), so a later statement sees what committed while
 * an earlier one waited for a lock. Resolves, after the commit, with each
 * statement's rows (text fields); rejects with the first error, in which
 * case nothing of the transaction was committed.
 */
class Pipeline extends Submission<(string | null)[][][]> {
  private readonly rows: (string | null)[][][];
  private completed = 0;

  constructor(private readonly statements: readonly PipelinedStatement[]) {
    super();
    this.rows = statements.map(() => []);
  }

  submit(connection: pg.Connection): void {
    const stream = (connection as unknown as { stream: { cork?: () => void; uncork?: () => void } }).stream;
    stream.cork?.();
    try {
      for (const statement of this.statements) {
        connection.bind({ statement: statement.name, values: statement.values.map(toParameter) }, false);
        connection.execute({}, false);
      }
      connection.sync();
    } finally {
      stream.uncork?.();
    }
  }

  override handleDataRow(message: { fields: (string | null)[] }): void {
    this.rows[this.completed]?.push(message.fields);
  }

  override handleCommandComplete(): void {
    this.completed++;
  }

  protected result(): (string | null)[][][] {
    return this.rows;
  }
}

/** Parses statements under their names (once per connection), closed by a Sync. */
class Preparation extends Submission<void> {
  constructor(private readonly statements: readonly StatementToPrepare[]) {
    super();
  }

  submit(connection: pg.Connection): void {
    for (const statement of this.statements)
      connection.parse({ name: statement.name, text: statement.text, types: [] }, false);
    connection.sync();
  }

  protected result(): void {}
}

/** Statement names prepared on each connection by `prepareStatements`. */
const prepared = new WeakMap<pg.ClientBase, Set<string>>();

/** True when `client` has prepared every one of `statements`. */
export function hasPrepared(client: pg.ClientBase, statements: readonly StatementToPrepare[]): boolean {
  const names = prepared.get(client);
  return names !== undefined && statements.every((statement) => names.has(statement.name));
}

/**
 * Prepares those of `statements` the connection has not prepared yet, in one
 * round trip. After a failure the connection's statements are unknown (some
 * may exist): the caller must not use the connection again.
 */
export async function prepareStatements(
  client: pg.ClientBase,
  statements: readonly StatementToPrepare[],
): Promise<void> {
  const names = prepared.get(client);
  const missing = statements.filter((statement) => !names?.has(statement.name));
  if (missing.length === 0) return;
  await client.query(new Preparation(missing)).promise;
  const known = names ?? new Set<string>();
  for (const statement of missing) known.add(statement.name);
  prepared.set(client, known);
}

/** Runs prepared `statements` on `client` as one pipeline (see `Pipeline`): each statement's rows. */
export function runPipeline(
  client: pg.ClientBase,
  statements: readonly PipelinedStatement[],
): Promise<(string | null)[][][]> {
  return client.query(new Pipeline(statements)).promise;
}
