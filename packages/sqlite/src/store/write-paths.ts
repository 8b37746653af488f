import type { AppendResult } from '@factline/core';
import {
  checkExpectedVersion,
  lazyAppendResult,
  liveVersion,
  matchRetriedAppend,
  type PreparedAppend,
  type StoredEvent,
  storedAppendResult,
} from '@factline/core/adapter';
import type { AppendSignal } from './append-signal.ts';
import { storedEvents } from './row-codec.ts';
import { toStorageError } from './sqlite-errors.ts';
import type { StoreStatements } from './statements.ts';

export interface WritePathsOptions {
  sql: StoreStatements;
  signal: AppendSignal;
  /** Clock for `recordedAt`. */
  now: () => number;
  /** Applies an append's events to the inline projections (see inline-projections.ts); absent without any. */
  runInline?: (events: readonly StoredEvent[]) => void;
}

/**
 * The append write path: one append, as a job of the write queue (inside its
 * transaction and its own savepoint). Checks the expected version, inserts
 * the events, runs the inline projections; a faithful retry of an append
 * already stored gets the original result.
 */
export function createWritePaths(options: WritePathsOptions): { writeAppend(append: PreparedAppend): AppendResult } {
  const { sql, signal, now, runInline } = options;

  /** The stored events whose ids this append uses, ignoring rows it wrote itself (versions above `before`). */
  const retriedAppend = (append: PreparedAppend, before: number): StoredEvent[] | undefined =>
    matchRetriedAppend(
      append,
      append.events.map((e) => {
        const row = sql.eventById.get(e.id);
        const ownRow = row && row.streamId === append.streamId && row.streamVersion > before;
        return row && !ownRow ? row : undefined;
      }),
    );

  const writeAppend = (append: PreparedAppend): AppendResult => {
    const current = liveVersion(append.streamId, sql.stream.get(append.streamId, append.streamId));
    try {
      checkExpectedVersion(append.streamId, append.expectedVersion, current);
    } catch (conflict) {
      const retried = retriedAppend(append, current);
      if (retried) return storedAppendResult(append.streamId, retried);
      throw conflict;
    }
    const recordedAt = now();
    let version = current;
    let position = 0;
    const positions: number[] = [];
    for (const event of append.events) {
      version += 1;
      try {
        position = Number(
          sql.insertEvent.run(
            event.id,
            append.streamId,
            version,
            append.category,
            event.type,
            event.schemaVersion,
            event.data,
            event.metadata,
            recordedAt,
          ).lastInsertRowid,
        );
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw error;
        // An id is stored already (expectedVersion let the append through). A faithful
        // retry fails on its first event, before writing anything: report the original
        // result. Otherwise matchRetriedAppend throws EventIdConflictError and the
        // job's savepoint rolls back what this append wrote so far.
        const retried = retriedAppend(append, current);
        if (retried && version === current + 1) return storedAppendResult(append.streamId, retried);
        throw toStorageError(error);
      }
      positions.push(position);
    }
    // Most callers need only version and position: build the event objects on first use.
    const stored = () => storedEvents(append, current, positions, recordedAt);
    if (runInline) runInline(stored());
    signal.noteAppended(position);
    return lazyAppendResult(append.streamId, version, position, stored);
  };

  return { writeAppend };
}
