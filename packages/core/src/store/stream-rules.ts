import { StreamDeletedError, StreamNotFoundError } from '../errors/index.ts';
import { normalizeDeleteStream } from './store-options.ts';
import type { DeleteMode, ExpectedVersion, StreamInfo } from './types.ts';
import { assertIntegerOption, assertStreamId, checkExpectedVersion, type StoreLimits } from './validation.ts';

/**
 * What a store knows of one stream, as every store's rules read it. The SQL
 * adapters' stream-state rows have this shape, so they are read as they come.
 */
export interface StreamState {
  /** The version of its last event, kept through truncation and hard deletion; 0: never written. */
  version: number;
  /** Events before this version were removed (1: nothing truncated). */
  truncatedBefore: number;
  /** Hard-deleted: the id may never be written again. SQLite's 1 and 0 stand for true and false. */
  tombstoned: boolean | number;
  /** The store keeps a record of it besides its events (a truncation or a tombstone). Absent: false. */
  recorded?: boolean | number;
}

/** What `deleteStream` was asked to do, checked. */
export interface DeleteRequest {
  expected: ExpectedVersion;
  mode: DeleteMode;
}

/** `deleteStream`'s arguments, checked as every store checks them. */
export function checkDeleteRequest(streamId: string, options: unknown, limits: StoreLimits): DeleteRequest {
  assertStreamId(streamId, limits);
  return normalizeDeleteStream(options);
}

/** `truncateBefore`'s arguments, checked; returns the version asked for (at least 1). */
export function checkTruncateRequest(streamId: string, version: unknown, limits: StoreLimits): number {
  assertStreamId(streamId, limits);
  return assertIntegerOption(version, 'version', 1) as number;
}

/**
 * The version of a stream that may be read or written: `StreamDeletedError`
 * when it is tombstoned, 0 when there is no such stream.
 */
export function liveVersion(streamId: string, state: StreamState | undefined): number {
  if (state === undefined) return 0;
  if (state.tombstoned) throw new StreamDeletedError(streamId);
  return state.version;
}

/** `streamInfo`'s answer: undefined for a stream with neither events nor a record. */
export function streamInfoOf(streamId: string, state: StreamState | undefined): StreamInfo | undefined {
  if (state === undefined || (state.version === 0 && !state.recorded)) return undefined;
  const tombstoned = Boolean(state.tombstoned);
  return { streamId, exists: !tombstoned, version: state.version, truncatedBefore: state.truncatedBefore, tombstoned };
}

/** A stream's live version for deletion and truncation: refuses a tombstoned or unknown stream. */
function existingVersion(streamId: string, state: StreamState | undefined): number {
  const version = liveVersion(streamId, state);
  if (version === 0) throw new StreamNotFoundError(streamId);
  return version;
}

/**
 * `deleteStream`'s decision. Every event of the stream goes. Returns the
 * tombstone to record for a hard delete (its version stays, no version of it
 * is readable, the id is never written again), or undefined for a soft
 * delete: the stream is forgotten and may start again from version 1.
 * Throws `StreamDeletedError`, `StreamNotFoundError` or `ConcurrencyError`
 * (the expected version does not hold), before anything is removed.
 */
export function decideDelete(
  streamId: string,
  state: StreamState | undefined,
  request: DeleteRequest,
): StreamState | undefined {
  const version = existingVersion(streamId, state);
  checkExpectedVersion(streamId, request.expected, version);
  if (request.mode !== 'hard') return undefined;
  return { version, truncatedBefore: version + 1, tombstoned: true, recorded: true };
}

/**
 * `truncateBefore`'s decision: the stream's new first version (events below
 * it go; at most its version + 1, so the version stays), or undefined when
 * nothing is to be removed (it was truncated as far already). Throws
 * `StreamDeletedError` or `StreamNotFoundError` before anything is removed.
 */
export function decideTruncate(
  streamId: string,
  state: StreamState | undefined,
  requested: number,
): number | undefined {
  const version = existingVersion(streamId, state);
  const before = Math.min(requested, version + 1);
  return before <= (state as StreamState).truncatedBefore ? undefined : before;
}
