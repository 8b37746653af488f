import type { NormalizedReadAll } from './read-options.ts';
import { normalizeReadAll } from './read-options.ts';
import type { Event, ReadAllOptions, RecordedEvent, RecordedOf } from './types.ts';

/** How one store reads the global log a page at a time, for `readAllInPages`. */
export interface ReadAllPages<Row> {
  /**
   * Up to `size` rows with a position above `after`, in position order, that
   * pass the query's filters.
   */
  page(after: number, size: number): readonly Row[] | Promise<readonly Row[]>;
  /** A row's global position (the next page starts after the last one's). */
  position(row: Row): number;
  /** The event a row holds, as a fresh object. */
  event(row: Row): RecordedEvent;
}

/**
 * `readAll` for every store: checks the options, then reads pages of
 * `batchSize` (fewer when `limit` is closer) from the position asked for,
 * checking that the store is still open before each page, until a page comes
 * back short or `limit` events were yielded. The iterator is lazy: a page is
 * read when the caller has taken the one before, so later pages see appends
 * made meanwhile. `open` throws once the store closed; `pages` builds the
 * store's reader (its statement) for the checked query.
 *
 * @example
 * readAll(options) {
 *   return readAllInPages(options, open, (query) => ({
 *     page: (after, size) => selectAfter(after, size, query.types),
 *     position: (row) => row.position,
 *     event: toRecordedEvent,
 *   }));
 * }
 */
export function readAllInPages<E extends Event, Row>(
  options: ReadAllOptions | undefined,
  open: () => void,
  pages: (query: NormalizedReadAll) => ReadAllPages<Row>,
  map?: ReadAllMap,
): AsyncGenerator<RecordedOf<E>> {
  const events = readPages<E, Row>(options, open, pages, map);
  if (map) (events as { [MAPPED]?: true })[MAPPED] = true;
  return events;
}

/**
 * A function a store's `readAll` applies to each event as it yields it: a
 * store built on `readAllInPages` takes it as `readAll`'s second argument
 * (how `withSchemas` decodes in the store's own loop, without an iterator
 * around the store's). Check with {@link appliesReadAllMap} that it was applied.
 */
export type ReadAllMap = (event: RecordedEvent) => RecordedEvent | Promise<RecordedEvent>;

const MAPPED = Symbol('factline.read-all-mapped');

/**
 * Whether `events` came from `readAllInPages` given a map (so the map was applied).
 *
 * @example
 * const events = store.readAll(options, decode);
 * return appliesReadAllMap(events) ? events : decodeEach(events);
 */
export function appliesReadAllMap(events: AsyncIterable<unknown>): boolean {
  return (events as { [MAPPED]?: true })[MAPPED] === true;
}

async function* readPages<E extends Event, Row>(
  options: ReadAllOptions | undefined,
  open: () => void,
  pages: (query: NormalizedReadAll) => ReadAllPages<Row>,
  map: ReadAllMap | undefined,
): AsyncGenerator<RecordedOf<E>> {
  open();
  const query = normalizeReadAll(options);
  const reader = pages(query);
  let cursor = query.after;
  let remaining = query.limit;
  while (remaining > 0) {
    open();
    const size = Math.min(query.batchSize, remaining);
    const read = reader.page(cursor, size);
    const rows = Array.isArray(read) ? (read as readonly Row[]) : await read;
    if (rows.length === 0) return;
    // The caller names the union it expects; the store yields what was stored, unchecked (see `EventStore.readAll`).
    // An async generator's `yield` awaits its operand: a map's promise is settled before the caller sees it.
    if (map) for (const row of rows) yield map(reader.event(row)) as unknown as RecordedOf<E>;
    else for (const row of rows) yield reader.event(row) as RecordedOf<E>;
    cursor = reader.position(rows[rows.length - 1] as Row);
    remaining -= rows.length;
    if (rows.length < size) return;
  }
}
