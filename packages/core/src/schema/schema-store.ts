import { StoreClosedError, ValidationError, type ValidationIssue } from '../errors/index.ts';
import { appliesReadAllMap, type ReadAllMap } from '../store/read-all-pages.ts';
import type { Event, EventStore, EventToAppend, ReadAllOptions, RecordedEvent, RecordedOf } from '../store/types.ts';
import { decodeEvent } from './decode.ts';
import type { EncodedData, SchemaRegistry } from './registry.ts';
import { isThenable } from './validate.ts';

/** Where a store wrapped by `withSchemas` keeps what it wraps, for readers that decode event by event. */
const SCHEMA_SOURCE = Symbol.for('factline.schema-source');

/** The store a `withSchemas` store wraps (it reads events as stored) and its registry. */
export interface SchemaSource {
  store: EventStore;
  registry: SchemaRegistry;
}

/**
 * The raw store and registry behind a store made by `withSchemas`; `undefined` for any other store.
 *
 * @example
 * const source = schemaSourceOf(store); // source?.store reads events as stored
 */
export function schemaSourceOf(store: EventStore): SchemaSource | undefined {
  return (store as { [SCHEMA_SOURCE]?: SchemaSource })[SCHEMA_SOURCE];
}

/** Encodes one event, or records its issues under `events[index]`; `undefined` marks a failure. */
function encodeEvent(
  registry: SchemaRegistry,
  event: EventToAppend,
  index: number,
  issues: ValidationIssue[][],
): EventToAppend | undefined | Promise<EventToAppend | undefined> {
  const path = `events[${index}]`;
  const mine: ValidationIssue[] = [];
  issues[index] = mine;
  const definition = registry.definition('event', event.type);
  if (definition && event.schemaVersion !== undefined && event.schemaVersion !== definition.version) {
    mine.push({
      path: `${path}.schemaVersion`,
      message: `'${event.type}' is at version ${definition.version}: leave schemaVersion out (it is stamped) or give ${definition.version}, got ${String(event.schemaVersion)}`,
    });
  }
  const done = (encoded: EncodedData) => {
    if (mine.length > 0) return undefined;
    if (encoded.schemaVersion === undefined) return event;
    return { ...event, data: encoded.data, schemaVersion: encoded.schemaVersion };
  };
  const failed = (error: unknown) => {
    if (!(error instanceof ValidationError)) throw error;
    for (const issue of error.issues) mine.push({ path: `${path}.${issue.path}`, message: issue.message });
    return undefined;
  };
  try {
    const encoded = registry.encode('event', event.type, event.data);
    return isThenable(encoded) ? Promise.resolve(encoded).then(done, failed) : done(encoded);
  } catch (error) {
    return failed(error);
  }
}

/**
 * Validates every event of an append against its current schema (awaiting
 * asynchronous validators) and stamps its `schemaVersion`; one
 * `ValidationError` lists every issue of every event. Input that is not an
 * array of events is left to the store, which refuses it with its own issues.
 */
async function encodeAppend(
  registry: SchemaRegistry,
  events: readonly EventToAppend[],
): Promise<readonly EventToAppend[]> {
  if (!Array.isArray(events)) return events;
  const issues: ValidationIssue[][] = [];
  const encoded = events.map((event: EventToAppend, index) =>
    typeof event?.type === 'string' ? encodeEvent(registry, event, index, issues) : event,
  );
  const settled = encoded.some(isThenable) ? await Promise.all(encoded) : (encoded as (EventToAppend | undefined)[]);
  const all = issues.flat();
  if (all.length > 0) throw new ValidationError(all);
  return settled as EventToAppend[];
}

/** Decodes a page of events; a promise only when a schema validates asynchronously on read. */
function decodeEvents(registry: SchemaRegistry, events: RecordedEvent[]): RecordedEvent[] | Promise<RecordedEvent[]> {
  let pending = false;
  const decoded = events.map((event) => {
    const d = decodeEvent(registry, event);
    pending ||= isThenable(d);
    return d;
  });
  return pending ? Promise.all(decoded) : (decoded as RecordedEvent[]);
}

/** Any store's `readAll`, decoded event by event: for a store not built on `readAllInPages`. */
async function* decodeEach(
  registry: SchemaRegistry,
  events: AsyncIterable<RecordedEvent>,
): AsyncGenerator<RecordedEvent> {
  for await (const event of events) yield decodeEvent(registry, event);
}

type PagedReadAll = (options: ReadAllOptions | undefined, map: ReadAllMap) => AsyncIterable<RecordedEvent>;

/**
 * The store with its event types' schemas applied, written once for every
 * adapter (the factories apply it when given `schemas`): `append` validates
 * and stamps every event (all or nothing), `readStream` and `readAll` upcast
 * every event to its current version through `decodeEvent`. The stored
 * payload is never rewritten. Every other method, and the adapter's own
 * members (`database`, `pool`, `onAppend`…), are the store's.
 *
 * @example
 * const store = withSchemas(getInMemoryEventStore(), createSchemaRegistry([OrderPlaced]));
 */
export function withSchemas<S extends EventStore>(store: S, registry: SchemaRegistry): S {
  if (schemaSourceOf(store)) {
    throw new ValidationError({ path: 'schemas', message: 'the store already applies a schema registry' });
  }
  const decode = (event: RecordedEvent) => decodeEvent(registry, event);
  // Appends still being validated when `close()` is called reach the store before it closes, as it promises.
  const encoding = new Set<Promise<unknown>>();
  let closing = false;
  return {
    ...store,
    [SCHEMA_SOURCE]: { store, registry } satisfies SchemaSource,

    append(streamId, events, options) {
      if (closing) return Promise.reject(new StoreClosedError());
      const encoded = encodeAppend(registry, events);
      encoding.add(encoded);
      const done = () => encoding.delete(encoded);
      encoded.then(done, done);
      return encoded.then((ready) => store.append(streamId, ready, options));
    },

    close() {
      closing = true;
      return Promise.allSettled([...encoding]).then(() => store.close());
    },

    async readStream<E extends Event = Event>(streamId: string, options?: Parameters<EventStore['readStream']>[1]) {
      const result = await store.readStream<E>(streamId, options);
      const events = await decodeEvents(registry, result.events as RecordedEvent[]);
      return { ...result, events: events as RecordedOf<E>[] };
    },

    readAll<E extends Event = Event>(options?: ReadAllOptions): AsyncIterable<RecordedOf<E>> {
      // A store built on `readAllInPages` decodes in its own loop (no iterator around it: cheaper).
      const events = (store.readAll as PagedReadAll)(options, decode);
      return (appliesReadAllMap(events) ? events : decodeEach(registry, events)) as AsyncIterable<RecordedOf<E>>;
    },
  };
}
