import { StoreClosedError } from '../errors/index.ts';
import { checkInMemoryEventStoreOptions } from '../options/core-options.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import { withSchemas } from '../schema/schema-store.ts';
import { instrumentEventStore } from '../tracing/store-spans.ts';
import { matchRetriedAppend, type StoredEvent, toRecordedEvent } from './idempotency.ts';
import { type ReadAllMap, readAllInPages } from './read-all-pages.ts';
import { normalizeReadStream } from './read-options.ts';
import {
  checkDeleteRequest,
  checkTruncateRequest,
  decideDelete,
  decideTruncate,
  liveVersion,
  type StreamState,
  streamInfoOf,
} from './stream-rules.ts';
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
  StreamInfo,
} from './types.ts';
import {
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
  /**
   * The application's event types: appends are validated and stamped with
   * their current schema version, reads upcast to it (see `withSchemas`).
   */
  schemas?: SchemaRegistry;
}

interface MemoryStream extends StreamState {
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
  const store = openInMemoryEventStore(options);
  return instrumentEventStore(options.schemas ? withSchemas(store, options.schemas) : store, 'in-memory');
}

function openInMemoryEventStore(options: InMemoryEventStoreOptions): EventStore {
  const limits: StoreLimits = { ...defaultStoreLimits, ...options.limits };
  const now = options.now ?? Date.now;
  const log: StoredEvent[] = []; // sorted by position
  const streams = new Map<string, MemoryStream>();
  const byId = new Map<string, StoredEvent>();
  let lastPosition = 0;
  let closed = false;

  const open = () => {
    if (closed) throw new StoreClosedError();
  };

  /** The stream, unless it was hard-deleted (`StreamDeletedError`). */
  const liveStream = (streamId: string): MemoryStream | undefined => {
    const stream = streams.get(streamId);
    liveVersion(streamId, stream);
    return stream;
  };

  const removeFromLog = (removed: readonly StoredEvent[]) => {
    if (removed.length === 0) return;
    const gone = new Set(removed);
    // In place: spreading a large log as call arguments would overflow the stack after the log was emptied.
    let kept = 0;
    for (const event of log) if (!gone.has(event)) log[kept++] = event;
    log.length = kept;
    for (const event of removed) byId.delete(event.id);
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

  const store: EventStore = {
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

    // `map`: withSchemas's decoding, applied in this loop (see `ReadAllMap`).
    readAll<E extends Event = Event>(readOptions?: ReadAllOptions, map?: ReadAllMap) {
      return readAllInPages<E, StoredEvent>(
        readOptions,
        open,
        ({ types, categories }) => {
          const typeSet = types && new Set(types);
          const categorySet = categories && new Set(categories);
          return {
            page: (after, size) => {
              const page: StoredEvent[] = [];
              for (let i = indexAfter(after); i < log.length && page.length < size; i++) {
                const event = log[i] as StoredEvent;
                if (typeSet && !typeSet.has(event.type)) continue;
                if (categorySet && !categorySet.has(streamCategory(event.streamId))) continue;
                page.push(event);
              }
              return page;
            },
            position: (event) => event.position,
            event: toRecordedEvent,
          };
        },
        map,
      );
    },

    async headPosition() {
      open();
      return lastPosition;
    },

    async streamInfo(streamId: string): Promise<StreamInfo | undefined> {
      open();
      assertStreamId(streamId, limits);
      return streamInfoOf(streamId, streams.get(streamId));
    },

    async deleteStream(streamId: string, deleteOptions?: DeleteStreamOptions) {
      open();
      const request = checkDeleteRequest(streamId, deleteOptions, limits);
      const stream = streams.get(streamId);
      const tombstone = decideDelete(streamId, stream, request);
      removeFromLog((stream as MemoryStream).events);
      if (tombstone) streams.set(streamId, { ...tombstone, tombstoned: true, events: [] });
      else streams.delete(streamId);
    },

    async truncateBefore(streamId: string, version: number) {
      open();
      const requested = checkTruncateRequest(streamId, version, limits);
      const stream = streams.get(streamId);
      const before = decideTruncate(streamId, stream, requested);
      if (before === undefined) return;
      const kept = (stream as MemoryStream).events.filter((e) => e.streamVersion >= before);
      removeFromLog((stream as MemoryStream).events.filter((e) => e.streamVersion < before));
      (stream as MemoryStream).events = kept;
      (stream as MemoryStream).truncatedBefore = before;
    },

    async close() {
      closed = true;
    },
  };
  return store;
}

function appendResult(streamId: string, stored: readonly StoredEvent[]): AppendResult {
  const last = stored[stored.length - 1] as StoredEvent;
  return { streamId, version: last.streamVersion, position: last.position, events: stored.map(toRecordedEvent) };
}
