import { ValidationError } from '../../errors/index.ts';
import { type ParkedEvent, type ProjectionBackend, parseProjectionVersionKey } from '../../projections/types.ts';
import type { EventStore, RecordedEvent } from '../../store/types.ts';

/** A read model's rows, by table and key. */
type Tables = Map<string, Map<string, unknown>>;

/**
 * The transaction an in-memory projection handler writes through: tables of
 * rows by key. It works on a copy of the read model that replaces the model
 * when the batch commits; once its transaction ended it refuses every call,
 * as the SQL backends' handles do.
 */
export interface InMemoryProjectionTx {
  /** The rows of `table` (created empty on first use), as this transaction sees them. */
  table(name: string): Map<string, unknown>;
}

export interface InMemoryProjectionBackend extends ProjectionBackend<InMemoryProjectionTx> {
  /** The committed rows of `table` (a copy). */
  read(table: string): Map<string, unknown>;
}

const copy = (tables: Tables): Tables => structuredClone(tables);

/**
 * A projection backend in memory, over any event store: checkpoints, parked
 * events, live versions and a read model of tables, each batch committed
 * whole or not at all. For unit tests of projections and for the runner's
 * own test bed (it runs the projection conformance suite); it notices appends
 * when it looks, at the runner's idle check.
 *
 * @example
 * const store = getInMemoryEventStore();
 * const backend = getInMemoryProjectionBackend(store);
 * const runner = createProjectionRunner(backend, [projection]);
 */
export function getInMemoryProjectionBackend(store: EventStore): InMemoryProjectionBackend {
  let tables: Tables = new Map();
  const checkpoints = new Map<string, number>();
  const live = new Map<string, number>();
  const parked: ParkedEvent[] = [];
  /** Transactions one at a time, as a database would serialize them. */
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  /** Runs `work` on a copy of the model; the copy replaces the model when `keep` says so after it. */
  const transaction = async (
    work: ((tx: InMemoryProjectionTx) => void | Promise<void>) | undefined,
    keep: () => boolean,
  ): Promise<boolean> => {
    const draft = copy(tables);
    let ended = false;
    const tx: InMemoryProjectionTx = {
      table(name) {
        if (ended) {
          throw new ValidationError({ path: 'tx', message: "the projection batch's transaction has ended" });
        }
        let rows = draft.get(name);
        if (!rows) {
          rows = new Map();
          draft.set(name, rows);
        }
        return rows;
      },
    };
    try {
      await work?.(tx);
    } finally {
      ended = true;
    }
    if (!keep()) return false;
    // A copy again: maps the handler kept hold of are not the model's.
    tables = copy(draft);
    return true;
  };

  const unchanged = (name: string, expected: number, version?: { projection: string; version: number }) =>
    (checkpoints.get(name) ?? 0) === expected &&
    (version === undefined || (live.get(version.projection) ?? 1) <= version.version);

  return {
    store,
    read: (table) => new Map(copy(tables).get(table) ?? []),
    loadCheckpoint: async (name) => checkpoints.get(name) ?? 0,
    commit: ({ name, expected, checkpoint, work, version, resetParked }) =>
      serialized(async () => {
        if (!unchanged(name, expected, version)) return false;
        return transaction(work, () => {
          if (!unchanged(name, expected, version)) return false;
          checkpoints.set(name, checkpoint);
          if (resetParked) {
            const key = parseProjectionVersionKey(name);
            for (let i = parked.length - 1; i >= 0; i--) {
              const entry = parked[i] as ParkedEvent;
              if (entry.projection === key.name && entry.version === key.version) parked.splice(i, 1);
            }
          }
          return true;
        });
      }),
    park: (name, expected, event: RecordedEvent, error, version) =>
      serialized(async () => {
        if (!unchanged(name, expected, version)) return false;
        const { name: projection, version: keyVersion } = parseProjectionVersionKey(name);
        const entry = { projection, version: keyVersion, event, error, parkedAt: new Date() };
        // A rebuild may park the same event again: the newer error replaces the older.
        const at = parked.findIndex(
          (p) => p.projection === projection && p.version === keyVersion && p.event.position === event.position,
        );
        if (at >= 0) parked[at] = entry;
        else parked.push(entry);
        checkpoints.set(name, event.position);
        return true;
      }),
    loadLiveVersion: async (projection) => live.get(projection) ?? 1,
    recordLiveVersion: (projection, version) =>
      serialized(async () => {
        const before = live.get(projection) ?? 1;
        if (version > before) live.set(projection, version);
        return before;
      }),
    listParked: async (name) =>
      parked
        .filter((p) => {
          if (name === undefined) return true;
          const key = parseProjectionVersionKey(name);
          return p.projection === key.name && p.version === key.version;
        })
        .map((p) => ({ ...p })),
    transaction: (work) =>
      serialized(async () => {
        await transaction(work, () => true);
      }),
    waitForAppends: async (position, timeoutMs, signal) => {
      if ((await store.headPosition()) > position || signal.aborted) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener('abort', done, { once: true });
      });
    },
  };
}
