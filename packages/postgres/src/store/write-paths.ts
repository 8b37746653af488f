import type { AppendResult } from '@factline/core';
import type { PreparedAppend } from '@factline/core/adapter';
import type pg from 'pg';
import { isConnectionFailure, toStorageError } from '../pg-errors.ts';
import type { Settle, SettleOutcome } from './append-outcome.ts';
import { type AppendSignal, isNotifyQueueFull } from './append-signal.ts';
import type { PipelinedStatement } from './pipeline.ts';
import { type AppendOutcomeRow, appendParameters, isoTime, oneEventParameters, typeParsers } from './row-codec.ts';
import { Outcome, RefusedCode } from './schema.ts';
import type { StoreStatements } from './statements.ts';
import type { WriterConnections } from './writer-connections.ts';

export interface WritePathsOptions {
  writers: WriterConnections;
  statements: StoreStatements;
  signal: AppendSignal;
  settle: SettleOutcome;
  /** Clock for `recordedAt`. */
  now: () => number;
  /** Writes a batch with the inline projections (see inline-projections.ts); absent without any. */
  writeInline?: (batch: readonly PreparedAppend[]) => Promise<Settle[]>;
}

/**
 * The append write paths, for one batch of the append batcher: one event
 * alone as a pipeline of plain inserts; a batch of one-event appends as one
 * pipeline; anything else through the `append_events` function, then each
 * append alone if one broke the batch. Each returns one settle per append;
 * `writeAndSignal` then announces what committed.
 */
export function createWritePaths(options: WritePathsOptions): {
  writeAndSignal(batch: readonly PreparedAppend[]): Promise<Settle[]>;
} {
  const { writers, statements, signal, settle, now, writeInline } = options;
  const { fastAppend } = statements;
  const [fastLock, fastInsert, batchInsert, fastFirstInsert, fastNextInsert] = fastAppend;
  const takeAppendLock = { name: fastLock.name, values: [] };

  /** `name` is the statement's full name (from `statementName`). */
  const write = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    try {
      return await writers.query<R>({ name, text, values, types: typeParsers });
    } catch (error) {
      throw toStorageError(error);
    }
  };

  /** The outcome of the fast path; undefined when the append function must decide. */
  const appendOneFast = async (parameters: (string | number)[]): Promise<AppendOutcomeRow | undefined> => {
    const expected = parameters[2] as number;
    const insert = expected === 0 ? fastFirstInsert : expected > 0 ? fastNextInsert : fastInsert;
    const pipeline: PipelinedStatement[] = [takeAppendLock, { name: insert.name, values: parameters }];
    const claimed = signal.claim();
    if (claimed !== undefined) pipeline.push(signal.carriedNotify);
    let rows: (string | null)[][][] | undefined;
    try {
      rows = await writers.pipeline(fastAppend, pipeline);
    } catch (error) {
      if (claimed !== undefined) signal.unclaim(claimed, error);
      const { code, detail } = error as { code?: unknown; detail?: unknown };
      if (code === RefusedCode.versionConflict && typeof detail === 'string') {
        return { outcome: Outcome.versionConflict, version_after: Number(detail), last_pos: null };
      }
      if (code === RefusedCode.undecided || code === '23505') return undefined;
      // The notification queue refused the carried notification: append without it.
      if (claimed !== undefined && isNotifyQueueFull(error)) return appendOneFast(parameters);
      throw toStorageError(error);
    }
    const row = rows?.[1]?.[0];
    if (!rows || !row) {
      if (claimed !== undefined) signal.unclaim(claimed);
      return undefined; // no connection could be held for the pipeline
    }
    if (claimed !== undefined) signal.carried(rows);
    return { outcome: Outcome.appended, version_after: Number(row[1]), last_pos: Number(row[0]) };
  };

  /**
   * A batch of one-event appends as one pipeline: the append lock, then one
   * checked insert per append, in order (each sees the ones before it), then
   * one commit. A conflict is reported with the version the insert saw; an
   * append to a stream with a `streams` row is decided alone after the batch,
   * outside the write slot. Undefined when the batch must go through `append_events` instead:
   * no connection could be held, an id is already stored (23505 rolls the
   * whole pipeline back), or another statement error.
   */
  const writeOneEventBatch = async (
    batch: readonly PreparedAppend[],
    recordedAt: number,
  ): Promise<Settle[] | undefined> => {
    let rows: (string | null)[][][] | undefined;
    const at = isoTime(recordedAt);
    const pipeline: PipelinedStatement[] = [takeAppendLock];
    for (const append of batch) pipeline.push({ name: batchInsert.name, values: oneEventParameters(append, at) });
    const claimed = signal.claim();
    if (claimed !== undefined) pipeline.push(signal.carriedNotify);
    try {
      rows = await writers.pipeline(fastAppend, pipeline);
    } catch (error) {
      if (claimed !== undefined) signal.unclaim(claimed, error);
      if (isConnectionFailure(error)) throw toStorageError(error);
      return undefined;
    }
    if (!rows) {
      if (claimed !== undefined) signal.unclaim(claimed);
      return undefined;
    }
    if (claimed !== undefined) signal.carried(rows);
    const inserted = rows;
    return batch.map((append, i) => {
      const [position, version, recorded] = inserted[i + 1]?.[0] ?? [];
      if (position !== null && position !== undefined) {
        const outcome = { outcome: Outcome.appended, version_after: Number(version) + 1, last_pos: Number(position) };
        signal.noteAppended(outcome);
        return () => settle(append, outcome, recordedAt);
      }
      if (recorded === 'f' && version !== undefined && version !== null) {
        const conflict = { outcome: Outcome.versionConflict, version_after: Number(version), last_pos: null };
        return () => settle(append, conflict, recordedAt);
      }
      // A stream with a streams row: append_event decides, after the batch, after the ones deferred before it.
      return () => deferred(append);
    });
  };

  /**
   * Appends deferred to `append_event` run one after another, in the order their batches settle them (each
   * batch's in its order): started together, each on a connection of its own, they would race for the append
   * lock and commit in any order, so a later append to a truncated stream could land first, or meet a version
   * an earlier one was to make and conflict.
   */
  let deferredTail: Promise<unknown> = Promise.resolve();
  const deferred = (append: PreparedAppend): Promise<AppendResult> => {
    const run = deferredTail.then(async () => {
      const [alone] = await writeAndSignal([append]);
      return (alone as Settle)();
    });
    deferredTail = run.catch(() => undefined);
    return run;
  };

  const writeBatch = async (batch: readonly PreparedAppend[]): Promise<Settle[]> => {
    if (writeInline) return writeInline(batch);
    const recordedAt = now();
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only && only.events.length === 1) {
      const parameters = oneEventParameters(only, isoTime(recordedAt));
      let row = await appendOneFast(parameters);
      if (!row) {
        const [one] = await write<{ r: number[] }>(statements.appendOne.name, statements.appendOne.text, parameters);
        const [outcome, versionAfter, lastPosition] = (one as { r: number[] }).r as [number, number, number];
        row = { outcome, version_after: versionAfter, last_pos: lastPosition };
      }
      signal.noteAppended(row);
      return [() => settle(only, row, recordedAt)];
    }
    if (batch.every((append) => append.events.length === 1)) {
      const outcomes = await writeOneEventBatch(batch, recordedAt);
      if (outcomes) return outcomes;
    }
    let rows: AppendOutcomeRow[];
    try {
      rows = await write<AppendOutcomeRow>(
        statements.append.name,
        statements.append.text,
        appendParameters(batch, recordedAt),
      );
    } catch (error) {
      // The whole batch rolled back. If one append broke the statement (not the
      // connection), write each alone so that only that one fails.
      if (batch.length === 1 || isConnectionFailure((error as { cause?: unknown }).cause)) throw error;
      const outcomes: Settle[] = [];
      for (const append of batch) {
        try {
          const [settleOne] = await writeBatch([append]);
          outcomes.push(settleOne as Settle);
        } catch (single) {
          outcomes.push(() => Promise.reject(single));
        }
      }
      return outcomes;
    }
    for (const row of rows) signal.noteAppended(row);
    return batch.map((append, i) => () => settle(append, rows[i] as AppendOutcomeRow, recordedAt));
  };

  /** Writes a batch, then wakes this process's runners and (coalesced) the others. */
  const writeAndSignal = async (batch: readonly PreparedAppend[]): Promise<Settle[]> => {
    const outcomes = await writeBatch(batch);
    signal.signal();
    return outcomes;
  };

  return { writeAndSignal };
}
