import { type AppendResult, EventIdConflictError, StreamDeletedError } from '@factline/core';
import {
  checkExpectedVersion,
  lazyAppendResult,
  matchRetriedAppend,
  type PreparedAppend,
  type StoredEvent,
  storedAppendResult,
} from '@factline/core/adapter';
import { type AppendOutcomeRow, storedEvents } from './row-codec.ts';
import { Outcome } from './schema.ts';
import type { StoreQuery, StoreStatements } from './statements.ts';

/** One append's result or error, taken once its batch committed. */
export type Settle = () => AppendResult | Promise<AppendResult>;

/** Turns one append's outcome into its result or error (after the batch committed). */
export type SettleOutcome = (
  append: PreparedAppend,
  row: AppendOutcomeRow,
  recordedAt: number,
) => AppendResult | Promise<AppendResult>;

export function createSettle(query: StoreQuery, statements: StoreStatements): SettleOutcome {
  /** The stored events with the ids an append uses. */
  const storedByIds = async (append: PreparedAppend): Promise<(StoredEvent | undefined)[]> => {
    const rows = await query<StoredEvent>('events-by-id', statements.eventsById, [append.events.map((e) => e.id)]);
    const byId = new Map(rows.map((row) => [row.id, row]));
    return append.events.map((e) => byId.get(e.id));
  };

  const settleConflict = async (append: PreparedAppend, row: AppendOutcomeRow): Promise<AppendResult> => {
    // A conflict, or ids stored already: either a faithful retry of an append
    // whose outcome the caller never learned (report the original result), or a
    // real conflict. Ids the store generated cannot be stored yet: no lookup.
    if (!append.callerIds && row.outcome === Outcome.versionConflict) {
      checkExpectedVersion(append.streamId, append.expectedVersion, row.version_after);
    }
    const retried = matchRetriedAppend(append, await storedByIds(append));
    if (retried) return storedAppendResult(append.streamId, retried);
    if (row.outcome === Outcome.versionConflict) {
      checkExpectedVersion(append.streamId, append.expectedVersion, row.version_after);
    }
    throw new EventIdConflictError(append.events[0]?.id ?? '?', 'it was stored by another append meanwhile');
  };

  return (append, row, recordedAt) => {
    if (row.outcome === Outcome.appended) {
      return lazyAppendResult(append.streamId, row.version_after, row.last_pos as number, () =>
        storedEvents(append, row, recordedAt),
      );
    }
    if (row.outcome === Outcome.tombstoned) throw new StreamDeletedError(append.streamId);
    return settleConflict(append, row);
  };
}
