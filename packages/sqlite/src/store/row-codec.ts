import type { PreparedAppend, StoredEvent, StreamState } from '@factline/core/adapter';

/** Rows come back named as core's `StoredEvent`, so they convert without copying field by field. */
export type EventRow = StoredEvent;

/** A stream's state as the stream statement returns it (core's `StreamState`; booleans are 0 and 1). */
export interface StreamRow extends StreamState {
  /** 0 when the stream has no events and no record. */
  version: number;
  tombstoned: number;
  /** 1 when `factline_streams` holds a row for the stream. */
  recorded: number;
}

/**
 * The events an append stored: versions from `current + 1`, at the positions
 * their inserts were given.
 */
export function storedEvents(
  append: PreparedAppend,
  current: number,
  positions: readonly number[],
  recordedAt: number,
): StoredEvent[] {
  return append.events.map((event, i) => ({
    ...event,
    streamId: append.streamId,
    streamVersion: current + i + 1,
    position: positions[i] as number,
    recordedAt,
  }));
}
