import { type Projection, type RecordedEvent, ValidationError } from '@factline/core';
import { inlineEvents, inlineProjectionFailure, type StoredEvent, toRecordedEvent } from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import { withTransactionHandle } from '../transaction-handle.ts';
import { toStorageError } from './sqlite-errors.ts';

/** better-sqlite3 runs transactions synchronously: a handler that returns a promise would escape it. */
export function synchronously(result: unknown, projection: string): void {
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    throw new ValidationError({
      path: 'handle',
      message: `projection '${projection}' returned a promise; SQLite projection handlers must be synchronous`,
    });
  }
}

/** Runs each projection's `init` in a transaction of its own (at open). */
export function initInlineProjections(db: Database, projections: readonly Projection<Database>[]): void {
  for (const projection of projections) {
    const init = projection.init;
    if (!init) continue;
    try {
      db.transaction(() => synchronously(withTransactionHandle(db, init, projection.name), projection.name))();
    } catch (error) {
      throw toStorageError(error);
    }
  }
}

/**
 * Applies an append's events to the inline projections, inside the append's
 * transaction (a handler that throws fails the append and rolls it back).
 */
export function createInlineRun(
  db: Database,
  projections: readonly Projection<Database>[],
): (events: readonly StoredEvent[]) => void {
  return (events) => {
    let recorded: RecordedEvent[] | undefined;
    for (const projection of projections) {
      recorded ??= events.map(toRecordedEvent);
      const mine = inlineEvents(projection, recorded);
      if (mine.length === 0) continue;
      try {
        // A handle ended with the append's transaction: nothing the handler writes later can land.
        const handled = withTransactionHandle(
          db,
          (tx) => projection.handle(mine, tx),
          `projection '${projection.name}'`,
        );
        synchronously(handled, projection.name);
      } catch (error) {
        // The user's error, named: without it the write queue would report a storage failure.
        throw inlineProjectionFailure(projection, mine, error);
      }
    }
  };
}
