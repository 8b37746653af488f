import { isFactlineError, type Projection, type RecordedEvent } from '@factline/core';
import { inlineEvents, inlineProjectionFailure, type PreparedAppend, toRecordedEvent } from '@factline/core/adapter';
import type pg from 'pg';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';
import { withClientHandle } from '../transaction-handle.ts';
import type { Settle, SettleOutcome } from './append-outcome.ts';
import type { AppendSignal } from './append-signal.ts';
import { type AppendOutcomeRow, appendParameters, storedEvents, typeParsers } from './row-codec.ts';
import { Outcome } from './schema.ts';
import type { StoreStatements } from './statements.ts';
import { ABORTED_BY_CAUGHT_FAILURE, inStoreTransaction, isInFailedTransaction } from './store-transaction.ts';

/** Runs each projection's `init` in a transaction of its own (at open). */
export async function initInlineProjections(
  pool: pg.Pool,
  projections: readonly Projection<pg.PoolClient>[],
): Promise<void> {
  for (const projection of projections) {
    const init = projection.init;
    if (init) await inStoreTransaction(pool, (client) => withClientHandle(client, init));
  }
}

/**
 * A projection's handler caught the failure of a statement it sent and returned: the transaction is aborted
 * (`error`, 25P02, from the next statement), and that projection fails the append. Any other error as it is.
 */
function caughtFailure(projection: Projection<pg.PoolClient>, events: readonly RecordedEvent[], error: unknown) {
  if (!isInFailedTransaction(error)) return error;
  return inlineProjectionFailure(projection, events, new Error(ABORTED_BY_CAUGHT_FAILURE, { cause: error }));
}

export interface InlineWriteOptions {
  pool: pg.Pool;
  projections: readonly Projection<pg.PoolClient>[];
  statements: StoreStatements;
  signal: AppendSignal;
  settle: SettleOutcome;
  now: () => number;
}

/**
 * With inline projections, a batch is one transaction on a client: first
 * all its appends in one statement, then each projection's handler once on
 * all their events. If a handler throws (or caught a failed statement: the
 * commit rolls back), that transaction rolls back and the batch is written
 * again with each append in its own savepoint, followed by the handlers on
 * its events, so the append they fail on fails alone.
 */
export function createInlineWrite(
  options: InlineWriteOptions,
): (batch: readonly PreparedAppend[]) => Promise<Settle[]> {
  const { pool, projections, statements, signal, settle, now } = options;

  /**
   * Applies events to the projections; returns those that got some, with their events. `checked`: after each
   * handler, a statement tells whether a statement it sent failed and it caught the error (the transaction is
   * aborted then): that projection fails the append. (With one handler, the savepoint's release tells as much;
   * together, only the commit tells: it rolls back, and the batch goes again append by append.)
   */
  const runInline = async (client: pg.PoolClient, events: readonly RecordedEvent[], checked: boolean) => {
    const ran: { projection: Projection<pg.PoolClient>; events: RecordedEvent[] }[] = [];
    for (const projection of projections) {
      const mine = inlineEvents(projection, events);
      if (mine.length === 0) continue;
      ran.push({ projection, events: mine });
      try {
        // A handle ended with the handler: a query it sends later is refused, not run in another transaction.
        await withClientHandle(client, (tx) => projection.handle(mine, tx));
      } catch (error) {
        if (isConnectionFailure(error)) throw error;
        throw inlineProjectionFailure(projection, mine, error);
      }
      if (checked) {
        try {
          await client.query('SELECT 1');
        } catch (error) {
          throw caughtFailure(projection, mine, error);
        }
      }
    }
    return ran;
  };

  /**
   * The whole batch in one `append_events` call, then each projection's
   * handler once over every appended event: a few round trips for the lot.
   * Undefined when a handler threw (the transaction rolled back): the batch
   * then goes append by append, so that only the append it failed on fails.
   */
  const writeTogether = async (batch: readonly PreparedAppend[], recordedAt: number) => {
    try {
      const rows = await inStoreTransaction(pool, async (client) => {
        const { rows } = await client.query<AppendOutcomeRow>({
          text: statements.append.text,
          values: appendParameters(batch, recordedAt),
          types: typeParsers,
        });
        const events: RecordedEvent[] = [];
        batch.forEach((append, i) => {
          const row = rows[i] as AppendOutcomeRow;
          if (row.outcome === Outcome.appended)
            events.push(...storedEvents(append, row, recordedAt).map(toRecordedEvent));
        });
        await runInline(client, events, false);
        return rows;
      });
      for (const row of rows) signal.noteAppended(row);
      return batch.map(
        (append, i): Settle =>
          () =>
            settle(append, rows[i] as AppendOutcomeRow, recordedAt),
      );
    } catch (error) {
      if (isConnectionFailure(error) || isConnectionFailure((error as { cause?: unknown }).cause)) throw error;
      return undefined;
    }
  };

  return async (batch) => {
    const recordedAt = now();
    if (batch.length > 1) {
      const together = await writeTogether(batch, recordedAt);
      if (together) return together;
    }
    const { outcomes, appended } = await inStoreTransaction(pool, async (client) => {
      const outcomes: Settle[] = [];
      const appended: AppendOutcomeRow[] = [];
      for (const append of batch) {
        await client.query('SAVEPOINT factline_append');
        try {
          const { rows } = await client.query<AppendOutcomeRow>({
            text: statements.append.text,
            values: appendParameters([append], recordedAt),
            types: typeParsers,
          });
          const row = rows[0] as AppendOutcomeRow;
          if (row.outcome === Outcome.appended) {
            const events = storedEvents(append, row, recordedAt).map(toRecordedEvent);
            const handling = projections.filter((projection) => inlineEvents(projection, events).length > 0);
            const ran = await runInline(client, events, handling.length > 1);
            try {
              await client.query('RELEASE SAVEPOINT factline_append');
            } catch (error) {
              const only = ran.length === 1 ? ran[0] : undefined;
              throw only ? caughtFailure(only.projection, only.events, error) : error;
            }
          } else {
            await client.query('RELEASE SAVEPOINT factline_append');
          }
          appended.push(row);
          outcomes.push(() => settle(append, row, recordedAt));
        } catch (error) {
          if (isConnectionFailure(error)) throw error;
          await client.query('ROLLBACK TO SAVEPOINT factline_append');
          await client.query('RELEASE SAVEPOINT factline_append');
          const failure = isFactlineError(error) ? error : toStorageError(error);
          outcomes.push(() => {
            throw failure;
          });
        }
      }
      return { outcomes, appended };
    });
    // Counted once the transaction committed.
    for (const row of appended) signal.noteAppended(row);
    return outcomes;
  };
}
