import { StoreClosedError, StreamDeletedError, StreamNotFoundError } from '../errors/index.ts';
import { checkInMemoryEventStoreOptions } from '../options/core-options.ts';
import { matchRetriedAppend, type StoredEvent, toRecordedEvent } from './idempotency.ts';
import { normalizeReadAll, normalizeReadStream } from './read-options.ts';
import { normalizeDeleteStream } from './store-options.ts';
import type {
  AppendOptions,
  AppendResult,
  DeleteStreamOptions,
  Event,
  EventStore,
  EventToAppend,
  ReadAllOptions,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedOf,
  StreamInfo,
} from './types.ts';
import {
  assertIntegerOption,
  assertStreamId,
  checkExpectedVersion,
  defaultStoreLimits,
  prepareAppend,
  type StoreLimits,
  streamCategory,
} from './validation.ts';

export interface InMemoryEventStoreOptions {
  limits?: Partial<StoreLimits>;
  /** Clock for `recordedAt`; defaults to `Date.now`. */
  now?: () => number;
}

interface StreamState {
  version: number;
  truncatedBefore: number;
  tombstoned: boolean;
  /** Live events of the stream, in version order. */
  events: StoredEvent[];
}

/**
 * An event store in memory, with the same rules as the SQL stores: for unit
 * tests of your deciders and handlers. Nothing survives the process.
 *
 * @example
 * const store = getInMemoryEventStore();
 * await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }], { expectedVersion: 'no-stream' });
 * const { events } = await store.readStream('order-1');
 */
export function getInMemoryEventStore(given?: InMemoryEventStoreOptions): EventStore {
  const options = checkInMemoryEventStoreOptions(given) ?? {};
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const log: StoredEvent[] = []; // sorted by position
  const streams = new Map<string, StreamState>();
  const byId = new Map<string, StoredEvent>();
  let lastPosition = 0;
  let closed = false;

  const open = () => {
    if (closed) throw new StoreClosedError();
  };

  const liveStream = (streamId: string): StreamState | undefined => {
    const stream = streams.get(streamId);
    if (stream?.tombstoned) throw new StreamDeletedError(streamId);
    return stream;
  };

  const removeFromLog = (removed: readonly StoredEvent[]) => {
    if (removed.length === 0) return;
    const gone = new Set(removed);
    for (const event of removed) byId.delete(event.id);
    const kept = log.filter((event) => !gone.has(event));
    log.length = 0;
    log.push(...kept);
  };

  /** Index of the first event with position > `after`. */
  const indexAfter = (after: number): number => {
    let low = 0;
    let high = log.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((log[mid] as StoredEvent).position <= after) low = mid + 1;
      else high = mid;
    }
    return low;
  };

  return {
    async append(streamId: string, events: readonly EventToAppend[], appendOptions?: AppendOptions) {
      open();
      const append = prepareAppend(streamId, events, appendOptions, limits);
      const stream = liveStream(append.streamId);
      const retried = matchRetriedAppend(
        append,
        append.events.map((e) => byId.get(e.id)),
      );
      if (retried) return appendResult(append.streamId, retried);
      checkExpectedVersion(append.streamId, append.expectedVersion, stream?.version ?? 0);
      const state = stream ?? { version: 0, truncatedBefore: 1, tombstoned: false, events: [] };
      const recordedAt = now();
      const stored = append.events.map(
        (event, i): StoredEvent => ({
          ...event,
          streamId: append.streamId,
          streamVersion: state.version + i + 1,
          position: lastPosition + i + 1,
          recordedAt,
        }),
      );
      lastPosition += stored.length;
      state.version += stored.length;
      state.events.push(...stored);
      streams.set(append.streamId, state);
      for (const event of stored) {
        log.push(event);
        byId.set(event.id, event);
      }
      return appendResult(append.streamId, stored);
    },

    async readStream(streamId: string, readOptions?: ReadStreamOptions): Promise<ReadStreamResult> {
      open();
      assertStreamId(streamId, limits);
      const { from, to, direction, limit } = normalizeReadStream(readOptions);
      const stream = liveStream(streamId);
      if (!stream) return { streamId, exists: false, version: 0, events: [] };
      let selected = stream.events.filter((e) => e.streamVersion >= from && e.streamVersion <= to);
      if (direction === 'backwards') selected = selected.reverse();
      return {
        streamId,
        exists: true,
        version: stream.version,
        events: selected.slice(0, limit).map(toRecordedEvent),
      };
    },

    // The caller names the union it expects; the store yields what was stored, unchecked (see `EventStore.readAll`).
    async *readAll<E extends Event = Event>(readOptions?: ReadAllOptions): AsyncGenerator<RecordedOf<E>> {
      open();
      const { after, limit, types, categories, batchSize } = normalizeReadAll(readOptions);
      const typeSet = types && new Set(types);
      const categorySet = categories && new Set(categories);
      let cursor = after;
      let remaining = limit;
      while (remaining > 0) {
        open();
        const page: StoredEvent[] = [];
        for (let i = indexAfter(cursor); i < log.length && page.length < Math.min(batchSize, remaining); i++) {
          const event = log[i] as StoredEvent;
          cursor = event.position;
          if (typeSet && !typeSet.has(event.type)) continue;
          if (categorySet && !categorySet.has(streamCategory(event.streamId))) continue;
          page.push(event);
        }
        if (page.length === 0) return;
        for (const event of page) yield toRecordedEvent(event) as RecordedOf<E>;
        remaining -= page.length;
        // The iterator is lazy: later pages see appends made while it runs.
      }
    },

    async headPosition() {
      open();
      return lastPosition;
    },

    async streamInfo(streamId: string): Promise<StreamInfo | undefined> {
      open();
      assertStreamId(streamId, limits);
      const stream = streams.get(streamId);
      if (!stream) return undefined;
      return {
        streamId,
        exists: !stream.tombstoned,
        version: stream.version,
        truncatedBefore: stream.truncatedBefore,
        tombstoned: stream.tombstoned,
      };
    },

    async deleteStream(streamId: string, deleteOptions?: DeleteStreamOptions) {
      open();
      assertStreamId(streamId, limits);
      const { expected, mode } = normalizeDeleteStream(deleteOptions);
      const stream = liveStream(streamId);
      if (!stream) throw new StreamNotFoundError(streamId);
      checkExpectedVersion(streamId, expected, stream.version);
      removeFromLog(stream.events);
      if (mode === 'hard') {
        streams.set(streamId, {
          version: stream.version,
          truncatedBefore: stream.version + 1,
          tombstoned: true,
          events: [],
        });
      } else {
        streams.delete(streamId);
      }
    },

    async truncateBefore(streamId: string, version: number) {
      open();
      assertStreamId(streamId, limits);
      const requested = assertIntegerOption(version, 'version', 1) as number;
      const stream = liveStream(streamId);
      if (!stream) throw new StreamNotFoundError(streamId);
      const before = Math.min(requested, stream.version + 1);
      if (before <= stream.truncatedBefore) return;
      removeFromLog(stream.events.filter((e) => e.streamVersion < before));
      stream.events = stream.events.filter((e) => e.streamVersion >= before);
      stream.truncatedBefore = before;
    },

    async close() {
      closed = true;
    },
  };
}

function appendResult(streamId: string, stored: readonly StoredEvent[]): AppendResult {
  const last = stored[stored.length - 1] as StoredEvent;
  return { streamId, version: last.streamVersion, position: last.position, events: stored.map(toRecordedEvent) };
}
