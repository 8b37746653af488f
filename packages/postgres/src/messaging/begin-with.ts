import type pg from 'pg';
import { prepareStatements, runPipeline } from '../store/pipeline.ts';

/** `BEGIN` as a statement prepared by `prepareStatements`. */
const BEGIN_STATEMENT = { name: 'factline:begin', text: 'BEGIN' };

/**
 * Opens a transaction on `client` and runs `query` in it, in one round trip
 * instead of two: `BEGIN` and the statement pipelined and closed by one Sync,
 * which leaves the explicit transaction open (the caller commits or rolls
 * back). Both are prepared once per connection, the statement under its
 * name plus `:pipelined` (node-postgres does not know these names, so they
 * cannot clash with its own). Resolves with the statement's rows as text
 * fields. When the preparation fails, which statements exist on the
 * connection is unknown: `broken` is called, and the caller must release
 * the connection as broken.
 */
export async function beginWith(
  client: pg.ClientBase,
  query: pg.QueryConfig,
  broken: (error: unknown) => void,
): Promise<(string | null)[][]> {
  const name = `${query.name}:pipelined`;
  await prepareStatements(client, [BEGIN_STATEMENT, { name, text: query.text }]).catch((error: unknown) => {
    broken(error);
    throw error;
  });
  // Parameters go as text: a Date as its ISO form (node-postgres would do the same conversion).
  const values = (query.values ?? []).map((value) =>
    value instanceof Date ? value.toISOString() : value === null || value === undefined ? null : String(value),
  );
  const [, rows] = await runPipeline(client, [
    { name: BEGIN_STATEMENT.name, values: [] },
    { name, values },
  ]);
  return rows ?? [];
}
