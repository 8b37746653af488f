import { type StoredEvent, toRecordedEvent } from './idempotency.ts';
import type { AppendResult, RecordedEvent } from './types.ts';

/** Where a lazy result keeps what its `events` getter needs (a non-enumerable own property). */
const LAZY = Symbol('factline.lazyEvents');

interface LazyEvents {
  readonly stored: () => readonly StoredEvent[];
  events: RecordedEvent[] | undefined;
}

/**
 * The one `events` getter all lazy results share. A getter written in each
 * result's object literal costs a closure and an accessor pair per append,
 * and V8 moved them to the old generation: in a loop of appends that was
 * 1.1 µs per result and a major GC every few hundred thousand. Shared, the
 * result keeps the same shape to callers: `events` is an own, enumerable
 * property of a plain object.
 */
const eventsProperty: PropertyDescriptor = {
  get(this: { [LAZY]: LazyEvents }) {
    const lazy = this[LAZY];
    lazy.events ??= lazy.stored().map(toRecordedEvent);
    return lazy.events;
  },
  enumerable: true,
  configurable: true,
};

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
  const result = { streamId, version, position } as AppendResult;
  Object.defineProperty(result, LAZY, { value: { stored, events: undefined } });
  Object.defineProperty(result, 'events', eventsProperty);
  return result;
}

/** The result of an append that was stored before (a retry): its stored events, unchanged. */
export function storedAppendResult(streamId: string, stored: readonly StoredEvent[]): AppendResult {
  const last = stored[stored.length - 1] as StoredEvent;
  return lazyAppendResult(streamId, last.streamVersion, last.position, () => stored);
}
