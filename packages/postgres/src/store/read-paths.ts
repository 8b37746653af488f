import {
  type Event,
  type EventStore,
  type ReadAllOptions,
  type ReadStreamResult,
  type RecordedEvent,
  type StoreLimits,
  StreamDeletedError,
} from '@factline/core';
import {
  assertStreamId,
  normalizeReadStream,
  type ReadAllMap,
  readAllInPages,
  streamInfoOf,
} from '@factline/core/adapter';
import type pg from 'pg';
import { toStorageError } from '../pg-errors.ts';
import { statementName } from '../statement-name.ts';
import { eventOfRow, type StreamStateRow, typeParsers } from './row-codec.ts';
import type { StoreQuery, StoreStatements } from './statements.ts';

export interface ReadPathsOptions {
  pool: pg.Pool;
  schemaName: string;
  statements: StoreStatements;
  query: StoreQuery;
  limits: StoreLimits;
  /** Throws `StoreClosedError` once the store closed. */
  open: () => void;
}

/** Rows as arrays, one round trip on the pool. */
async function arrayRows(pool: pg.Pool, name: string, text: string, values: unknown[]): Promise<unknown[][]> {
  try {
    return (await pool.query<unknown[]>({ name, text, values, types: typeParsers, rowMode: 'array' })).rows;
  } catch (error) {
    throw toStorageError(error);
  }
}

/** The store's reads: `readStream`, `readAll`, `headPosition`, `streamInfo`. */
export function createReadPaths(
  options: ReadPathsOptions,
): Pick<EventStore, 'readStream' | 'readAll' | 'headPosition' | 'streamInfo'> {
  const { pool, schemaName, statements, query, limits, open } = options;
  const forwards = { name: statementName(schemaName, 'read-stream-forwards'), text: statements.readForwards };
  const backwards = { name: statementName(schemaName, 'read-stream-backwards'), text: statements.readBackwards };

  return {
    async readStream(streamId, readOptions): Promise<ReadStreamResult> {
      open();
      assertStreamId(streamId, limits);
      const { from, to, direction, limit } = normalizeReadStream(readOptions);
      // One statement, so the version and the events come from one snapshot.
      const read = direction === 'forwards' ? forwards : backwards;
      const rows = await arrayRows(pool, read.name, read.text, [streamId, from, to, limit]);
      // The state row has no position; the events' rows come in their order.
      let state: unknown[] | undefined;
      const events: RecordedEvent[] = [];
      for (const row of rows) {
        if (row[2] === null) state = row;
        else events.push(eventOfRow(row, 2, streamId));
      }
      if (state?.[1]) throw new StreamDeletedError(streamId);
      const version = (state?.[0] as number | null | undefined) ?? 0;
      if (version === 0) return { streamId, exists: false, version: 0, events: [] };
      return { streamId, exists: true, version, events };
    },

    // `map`: withSchemas's decoding, applied in this loop (see `ReadAllMap`).
    readAll<E extends Event = Event>(readOptions?: ReadAllOptions, map?: ReadAllMap) {
      return readAllInPages<E, unknown[]>(
        readOptions,
        open,
        ({ types, categories }) => {
          const { name, text } = statements.readAll(types !== undefined, categories !== undefined);
          const filters: unknown[] = [];
          if (types) filters.push(types);
          if (categories) filters.push(categories);
          return {
            page: (after, size) => arrayRows(pool, name, text, [after, ...filters, size]),
            position: (row) => row[1] as number,
            event: (row) => eventOfRow(row, 1, row[0] as string),
          };
        },
        map,
      );
    },

    async headPosition() {
      open();
      const rows = await query<{ head: number }>('head', statements.head, []);
      return rows[0]?.head ?? 0;
    },

    async streamInfo(streamId) {
      open();
      assertStreamId(streamId, limits);
      const [row] = await query<StreamStateRow>('stream-state', statements.streamState, [streamId]);
      return streamInfoOf(streamId, row);
    },
  };
}
