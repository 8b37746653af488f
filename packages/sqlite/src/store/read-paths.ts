import type { Event, EventStore, ReadAllOptions, ReadStreamResult, StoreLimits } from '@factline/core';
import {
  assertStreamId,
  liveVersion,
  normalizeReadStream,
  type ReadAllMap,
  readAllInPages,
  streamInfoOf,
  toRecordedEvent,
} from '@factline/core/adapter';
import type { Database } from 'better-sqlite3';
import type { EventRow } from './row-codec.ts';
import type { StoreStatements } from './statements.ts';

export interface ReadPathsOptions {
  db: Database;
  sql: StoreStatements;
  limits: StoreLimits;
  /** Throws `StoreClosedError` once the store closed. */
  open: () => void;
  /** Runs `work` on an open store; its failure rejects, as a `StorageError` unless it is a Factline error. */
  guard: <T>(work: () => T) => Promise<T>;
}

/** The store's reads: `readStream`, `readAll`, `headPosition`, `streamInfo`. */
export function createReadPaths(
  options: ReadPathsOptions,
): Pick<EventStore, 'readStream' | 'readAll' | 'headPosition' | 'streamInfo'> {
  const { db, sql, limits, open, guard } = options;
  const snapshot = db.transaction((read: () => unknown) => read());
  const readSnapshot = <T>(read: () => T): T => snapshot(read) as T;

  return {
    readStream(streamId, readOptions): Promise<ReadStreamResult> {
      return guard(() => {
        assertStreamId(streamId, limits);
        const { from, to, direction, limit } = normalizeReadStream(readOptions);
        return readSnapshot(() => {
          const version = liveVersion(streamId, sql.stream.get(streamId, streamId));
          if (version === 0) return { streamId, exists: false, version: 0, events: [] };
          const statement = direction === 'forwards' ? sql.readForwards : sql.readBackwards;
          const rows = statement.all(streamId, from, to, limit);
          return { streamId, exists: true, version, events: rows.map(toRecordedEvent) };
        });
      });
    },

    // `map`: withSchemas's decoding, applied in this loop (see `ReadAllMap`).
    readAll<E extends Event = Event>(readOptions?: ReadAllOptions, map?: ReadAllMap) {
      return readAllInPages<E, EventRow>(
        readOptions,
        open,
        ({ types, categories }) => {
          const statement = sql.readAll(types !== undefined, categories !== undefined);
          const filters: string[] = [];
          if (types) filters.push(JSON.stringify(types));
          if (categories) filters.push(JSON.stringify(categories));
          return {
            page: (after, size) => statement.all(after, ...filters, size),
            position: (row) => row.position,
            event: toRecordedEvent,
          };
        },
        map,
      );
    },

    headPosition() {
      return guard(() => (sql.head.get() as { head: number }).head);
    },

    streamInfo(streamId) {
      return guard(() => {
        assertStreamId(streamId, limits);
        return streamInfoOf(streamId, sql.stream.get(streamId, streamId));
      });
    },
  };
}
