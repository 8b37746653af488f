/**
 * The snapshot store port: the latest folded state of a stream, kept so that
 * `handleCommand` reads only the events after it. Rules every adapter keeps
 * (checked by `testSnapshotStoreConformance` in `@factline/core/testing`):
 * - one snapshot per stream and name: `save` replaces it, unless the stored
 *   one covers a later stream version (an older save is ignored, never
 *   written over a newer one); a save at the same version replaces;
 * - `save` reads `state` before it returns: changing the object afterwards
 *   changes nothing stored, and every `load` returns a state of its own;
 * - `state` is JSON: what JSON cannot carry faithfully (undefined, NaN,
 *   BigInt, Map, a cycle…) is a `ValidationError` naming its path, with
 *   nothing written;
 * - a snapshot is a cache: losing one costs a full read, never correctness,
 *   so callers check it against the stream before trusting it.
 */

/** The name of a stream's snapshot when none is given. */
export const DEFAULT_SNAPSHOT_NAME = 'default';

/** A stored snapshot, as `load` returns it. */
export interface Snapshot<State = unknown> {
  streamId: string;
  /** Lets two deciders keep a snapshot of one stream each. Default `'default'`. */
  name: string;
  /** The stream version the state covers: the last event folded into it. */
  version: number;
  /** The id of the event at `version`: tells the same stream from one deleted and written again. */
  lastEventId: string;
  /** The version of the state's shape (yours to bump when `evolve` or the state changes). */
  snapshotVersion: number;
  state: State;
  /** When it was saved (the store's clock unless given). */
  takenAt: Date;
}

/** What `save` takes: a snapshot whose `name` and `takenAt` may be left to their defaults. */
export interface SnapshotToSave<State = unknown> extends Omit<Snapshot<State>, 'name' | 'takenAt'> {
  /** Default `'default'`. */
  name?: string;
  /** Default: now, by the store's clock. */
  takenAt?: Date;
}

export interface SnapshotKeyOptions {
  /** Which of the stream's snapshots. Default `'default'`. */
  name?: string;
}

export interface SnapshotStore {
  /**
   * The stream's latest snapshot under `name`, or `undefined`. The state is a
   * fresh copy each call: changing it changes nothing stored.
   *
   * @example
   * const snapshot = await snapshots.load<CartState>('cart-7');
   */
  load<State = unknown>(streamId: string, options?: SnapshotKeyOptions): Promise<Snapshot<State> | undefined>;
  /**
   * Keeps `snapshot` as the stream's latest under its name. Resolves `true`
   * when stored, `false` when ignored because the stored one covers a later
   * stream version. `state` is read before this returns.
   *
   * @example
   * await snapshots.save({ streamId: 'cart-7', version: 120, lastEventId, snapshotVersion: 1, state });
   */
  save(snapshot: SnapshotToSave): Promise<boolean>;
  /**
   * Removes the stream's snapshot under `name`. Resolves whether there was one.
   *
   * @example
   * await snapshots.delete('cart-7');
   */
  delete(streamId: string, options?: SnapshotKeyOptions): Promise<boolean>;
}
