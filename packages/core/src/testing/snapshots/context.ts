import type { Decider } from '../../commands/decider.ts';
import type { CommandSnapshots, SnapshotErrorContext } from '../../commands/snapshot-options.ts';
import type { SnapshotStore } from '../../snapshots/types.ts';
import type { Event, EventStore, ReadStreamOptions } from '../../store/types.ts';
import { uniqueCategory } from '../conformance/context.ts';

/** What a snapshot conformance case runs against: the snapshot store and the event store it serves. */
export interface SnapshotEnvironment {
  snapshots: SnapshotStore;
  /** The event store `handleCommand` runs on, beside the snapshots (same database for the SQL adapters). */
  events: EventStore;
  /**
   * Another snapshot store on the same backend, as another process opens it.
   * Without it the case that needs one is skipped with the reason.
   */
  peer?: () => Promise<SnapshotStore> | SnapshotStore;
  /** Releases the environment (connections, files); called when the case ends. */
  close(): Promise<void> | void;
}

export interface SnapshotCaseContext extends SnapshotEnvironment {
  /** A stream id unique to this run. */
  streamId(label?: string): string;
}

export interface SnapshotConformanceCase {
  name: string;
  /** A reason to skip the case, given the environment (a capability it lacks). */
  skip?: (environment: SnapshotEnvironment) => string | undefined;
  run(context: SnapshotCaseContext): Promise<void>;
}

export const uniqueStreamId = (label = 's') => `${uniqueCategory(label)}-1`;

/** A valid snapshot of `streamId` at `version` to save. */
export const snapshotOf = (streamId: string, version: number, state: unknown = { total: version }) => ({
  streamId,
  version,
  lastEventId: `event-${version}`,
  snapshotVersion: 1,
  state,
});

// ---- a counter for the handleCommand cases ----

export type Added = Event<'Added', { n: number }>;
export interface Tally {
  total: number;
  count: number;
}
/** Adds `n`, `times` times (one event each). */
export interface Add {
  n: number;
  times?: number;
}

export const tally: Decider<Tally, Add, Added> = {
  initialState: () => ({ total: 0, count: 0 }),
  evolve: (state, event) => ({ total: state.total + event.data.n, count: state.count + 1 }),
  decide: (command) => Array.from({ length: command.times ?? 1 }, () => ({ type: 'Added', data: { n: command.n } })),
};

/** The `snapshots` option with errors collected in `errors`. */
export function snapshotOptions(
  store: SnapshotStore,
  errors: { error: unknown; context: SnapshotErrorContext }[],
  extra: Partial<CommandSnapshots<Tally, Added>> = {},
): CommandSnapshots<Tally, Added> {
  return { store, version: 1, onError: (error, context) => errors.push({ error, context }), ...extra };
}

/** Appends `count` `Added { n: 1 }` events to `streamId`, 100 at a time. */
export async function seed(events: EventStore, streamId: string, count: number): Promise<void> {
  for (let done = 0; done < count; done += 100) {
    const batch = Math.min(100, count - done);
    await events.append(
      streamId,
      Array.from({ length: batch }, () => ({ type: 'Added', data: { n: 1 } })),
    );
  }
}

/** An event store that counts what `readStream` returns, over a real store. */
export interface CountingStore {
  store: EventStore;
  /** Events returned by `readStream` since the last `reset`. */
  eventsRead(): number;
  /** The `from` of each `readStream` since the last `reset` (`undefined`: from the start). */
  reads(): (number | undefined)[];
  reset(): void;
}

export function countingStore(inner: EventStore): CountingStore {
  let read = 0;
  let froms: (number | undefined)[] = [];
  const store: EventStore = {
    append: (...args) => inner.append(...args),
    async readStream<E extends Event>(streamId: string, options?: ReadStreamOptions) {
      const result = await inner.readStream<E>(streamId, options);
      read += result.events.length;
      froms.push(options?.from);
      return result;
    },
    readAll: (options) => inner.readAll(options),
    headPosition: () => inner.headPosition(),
    streamInfo: (streamId) => inner.streamInfo(streamId),
    deleteStream: (streamId, options) => inner.deleteStream(streamId, options),
    truncateBefore: (streamId, version) => inner.truncateBefore(streamId, version),
    close: () => inner.close(),
  };
  return {
    store,
    eventsRead: () => read,
    reads: () => froms,
    reset: () => {
      read = 0;
      froms = [];
    },
  };
}
