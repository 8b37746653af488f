import { EventIdConflictError } from '../errors/index.ts';
import type { RecordedEvent } from './types.ts';
import type { PreparedAppend } from './validation.ts';

/** An event as adapters keep it: data and metadata still serialized. */
export interface StoredEvent {
  id: string;
  streamId: string;
  streamVersion: number;
  position: number;
  type: string;
  schemaVersion: number;
  data: string;
  metadata: string;
  /** Milliseconds since the epoch, or a Date (copied, never shared). */
  recordedAt: number | Date;
}

/** Turns a stored row into the event users see (fresh objects on every call). */
export function toRecordedEvent(row: StoredEvent): RecordedEvent {
  return {
    id: row.id,
    type: row.type,
    data: JSON.parse(row.data),
    // Most events carry no metadata: skip the parser for the common case.
    metadata: row.metadata === '{}' ? {} : JSON.parse(row.metadata),
    streamId: row.streamId,
    streamVersion: row.streamVersion,
    position: row.position,
    recordedAt: new Date(row.recordedAt),
    schemaVersion: row.schemaVersion,
  };
}

/** Metadata text without the trace context an append inherits from the span current at it. */
function withoutTraceContext(metadata: string): string {
  try {
    const { traceparent: _parent, tracestate: _state, ...rest } = JSON.parse(metadata) as Record<string, unknown>;
    return JSON.stringify(rest);
  } catch {
    return metadata;
  }
}

/**
 * Whether a retried event's metadata is the stored one's: the same text, or
 * the same but for its trace context. A retry runs in a span of its own (the
 * append's, when traced), whose `traceparent` it inherits: that makes it no
 * other event.
 */
const sameMetadata = (stored: string, given: string): boolean =>
  stored === given || withoutTraceContext(stored) === withoutTraceContext(given);

/**
 * Decides whether an append whose ids are (partly) stored already is a retry of
 * the same append after an unknown outcome. `stored[i]` is the stored event
 * with the id of `append.events[i]`, if any.
 *
 * Returns the stored events when it is a faithful retry (the caller reports
 * success without writing), `undefined` when none of the ids is stored, and
 * throws `EventIdConflictError` when the ids are taken by something else.
 */
export function matchRetriedAppend(
  append: PreparedAppend,
  stored: readonly (StoredEvent | undefined)[],
): StoredEvent[] | undefined {
  const found = stored.filter((s): s is StoredEvent => s !== undefined);
  if (found.length === 0) return undefined;
  const conflict = (index: number, reason: string) => new EventIdConflictError(append.events[index]?.id ?? '?', reason);
  if (found.length !== append.events.length) {
    const index = stored.findIndex((s) => s !== undefined);
    throw conflict(index, 'only part of this append is stored, so it cannot be a retry of it');
  }
  const first = found[0] as StoredEvent;
  for (let i = 0; i < found.length; i++) {
    const row = found[i] as StoredEvent;
    const event = append.events[i];
    if (row.streamId !== append.streamId) throw conflict(i, `it belongs to stream '${row.streamId}'`);
    if (row.streamVersion !== first.streamVersion + i) throw conflict(i, 'the stored events are in another order');
    if (
      event === undefined ||
      row.type !== event.type ||
      row.data !== event.data ||
      !sameMetadata(row.metadata, event.metadata) ||
      row.schemaVersion !== event.schemaVersion
    ) {
      throw conflict(i, 'the stored event has other content');
    }
  }
  const expected = append.expectedVersion;
  const expectedFirst = expected === 'no-stream' ? 1 : typeof expected === 'number' ? expected + 1 : undefined;
  if (expectedFirst !== undefined && first.streamVersion !== expectedFirst) {
    throw conflict(0, `it was stored at version ${first.streamVersion}, not right after the expected version`);
  }
  return found;
}
