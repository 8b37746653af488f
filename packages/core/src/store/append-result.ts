import { type StoredEvent, toRecordedEvent } from './idempotency.ts';
import type { AppendResult, RecordedEvent } from './types.ts';

/**
 * An append result whose `events` are built on first access, then kept: most
 * callers need only `version` and `position`, so adapters skip the work.
 */
export function lazyAppendResult(
  streamId: string,
  version: number,
  position: number,
  stored: () => readonly StoredEvent[],
): AppendResult {
  let events: RecordedEvent[] | undefined;
  // A getter in the literal (not defineProperty afterwards): same enumerable
  // own property, and V8 builds the object without a shape change.
  return {
    streamId,
    version,
    position,
    get events() {
      events ??= stored().map(toRecordedEvent);
      return events;
    },
  };
}

/** The result of an append that was stored before (a retry): its stored events, unchanged. */
export function storedAppendResult(streamId: string, stored: readonly StoredEvent[]): AppendResult {
  const last = stored[stored.length - 1] as StoredEvent;
  return lazyAppendResult(streamId, last.streamVersion, last.position, () => stored);
}
