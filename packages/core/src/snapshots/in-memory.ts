import { checkOptions } from '../options/check-options.ts';
import { checkSnapshotKey, type PreparedSnapshot, prepareSnapshot, snapshotFromStored } from './prepare.ts';
import type { SnapshotStore } from './types.ts';

export interface InMemorySnapshotStoreOptions {
  /** Clock for `takenAt` when a save gives none; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * A snapshot store in memory, with the SQL stores' rules (JSON state, copied
 * on save and on load; an older save never replaces a newer one): for unit
 * tests of code that uses snapshots. Nothing survives the process.
 *
 * @example
 * const snapshots = getInMemorySnapshotStore();
 * await handleCommand(store, 'cart-7', command, cartDecider, {
 *   snapshots: { store: snapshots, version: 1, every: 100, onError: console.error },
 * });
 */
export function getInMemorySnapshotStore(given?: InMemorySnapshotStoreOptions): SnapshotStore {
  const options = checkOptions(given, { now: 'function' }, 'getInMemorySnapshotStore') ?? {};
  const now = options.now ?? Date.now;
  // Stored as the JSON text a database would hold, so each load parses a state of its own.
  const streams = new Map<string, Map<string, PreparedSnapshot>>();
  return {
    async load(streamId, loadOptions) {
      const name = checkSnapshotKey(streamId, loadOptions, 'load');
      const stored = streams.get(streamId)?.get(name);
      return stored === undefined ? undefined : snapshotFromStored(stored);
    },
    // Not `async`: the state is serialized before the call returns, whatever the caller does next.
    save(snapshot) {
      try {
        const prepared = prepareSnapshot(snapshot, now);
        const names = streams.get(prepared.streamId) ?? new Map<string, PreparedSnapshot>();
        streams.set(prepared.streamId, names);
        const current = names.get(prepared.name);
        if (current !== undefined && current.version > prepared.version) return Promise.resolve(false);
        names.set(prepared.name, prepared);
        return Promise.resolve(true);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    async delete(streamId, deleteOptions) {
      const name = checkSnapshotKey(streamId, deleteOptions, 'delete');
      const names = streams.get(streamId);
      const had = names?.delete(name) ?? false;
      if (names?.size === 0) streams.delete(streamId);
      return had;
    },
  };
}
