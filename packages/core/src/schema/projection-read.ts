import { appliesReadAllMap } from '../store/read-all-pages.ts';
import type { EventStore, ReadAllOptions, RecordedEvent } from '../store/types.ts';
import { decodeEvent } from './decode.ts';
import { schemaSourceOf } from './schema-store.ts';
import { isThenable } from './validate.ts';

/** Events read as stored because they could not be decoded, with why. */
const failures = new WeakMap<RecordedEvent, unknown>();

/**
 * `readAll` for the projection runner. On a store with a registry
 * (`withSchemas`) every event is decoded through `decodeEvent`, like any
 * read; one that fails to decode does not end the read: it is yielded as
 * stored, its failure kept for {@link decodeFailureOf}, so the runner can
 * attribute the failure to that event (retry, park or fail it, as the
 * projection says) instead of failing the whole read. Any other store: its
 * own `readAll`.
 *
 * @example
 * for await (const event of readAllForProjection(store, { after, types })) batch.push(event);
 */
export function readAllForProjection(store: EventStore, options: ReadAllOptions): AsyncIterable<RecordedEvent> {
  const source = schemaSourceOf(store);
  if (!source) return store.readAll(options);
  const tolerant = (event: RecordedEvent): RecordedEvent | Promise<RecordedEvent> => {
    const failed = (error: unknown) => {
      failures.set(event, error);
      return event;
    };
    try {
      const decoded = decodeEvent(source.registry, event);
      return isThenable(decoded) ? Promise.resolve(decoded).catch(failed) : decoded;
    } catch (error) {
      return failed(error);
    }
  };
  const read = source.store.readAll as (options: ReadAllOptions, map: typeof tolerant) => AsyncIterable<RecordedEvent>;
  const events = read(options, tolerant);
  return appliesReadAllMap(events) ? events : mapEach(events, tolerant);
}

async function* mapEach(
  events: AsyncIterable<RecordedEvent>,
  map: (event: RecordedEvent) => RecordedEvent | Promise<RecordedEvent>,
): AsyncGenerator<RecordedEvent> {
  for await (const event of events) yield map(event);
}

/**
 * Why an event of `readAllForProjection` could not be decoded (`undefined`: it was).
 *
 * @example
 * const failure = decodeFailureOf(event); // an UpcastError, a SchemaError…
 */
export function decodeFailureOf(event: RecordedEvent): unknown {
  return failures.get(event);
}

/** The first event of a batch that could not be decoded, with its failure. */
export function firstDecodeFailure(
  events: readonly RecordedEvent[],
): { event: RecordedEvent; error: unknown } | undefined {
  for (const event of events) {
    if (failures.has(event)) return { event, error: failures.get(event) };
  }
  return undefined;
}
