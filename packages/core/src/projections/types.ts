import { ValidationError } from '../errors/index.ts';
import type { Event, EventStore, RecordedEvent, RecordedOf } from '../store/types.ts';

/**
 * A projection turns events into a read model. `Tx` is what the adapter hands
 * the handler: for SQLite the better-sqlite3 `Database` (inside a
 * transaction), for PostgreSQL a `pg` client inside a transaction. The handler
 * writes its read model with plain SQL through it, so the writes commit
 * together with the projection's checkpoint: exactly once. `E` is the event
 * union the projection reads: `handles` is checked against its types and the
 * handler receives its events (narrow one with `event.type`), unchecked at run time.
 *
 * @example
 * const orderSummaries = defineProjection<Database, OrderEvent>({
 *   name: 'order_summaries',
 *   handles: ['OrderPlaced', 'OrderPaid'],
 *   init: (db) => db.exec('CREATE TABLE IF NOT EXISTS order_summaries (id TEXT PRIMARY KEY, status TEXT)'),
 *   reset: (db) => db.exec('DELETE FROM order_summaries'),
 *   handle: (events, db) => { for (const e of events) ... },
 * });
 */
export interface Projection<Tx = unknown, E extends Event = Event> {
  /** Unique per store: `[a-z0-9_.-]`, at most 100 characters. Checkpoints are kept under it. */
  name: string;
  /** The event types the handler receives; others are skipped (and still counted as passed). */
  handles: readonly E['type'][];
  /** Creates the read model's tables; runs once when the runner starts, in a transaction. */
  init?: (tx: Tx) => void | Promise<void>;
  /**
   * Empties the read model for a rebuild; runs in the transaction that resets the checkpoint. Without
   * it a rebuild replays every event on top of the model as it is: a handler that accumulates (a
   * counter, a sum, a row per event) needs one.
   */
  reset?: (tx: Tx) => void | Promise<void>;
  /**
   * Applies a batch of events, in position order, inside the transaction that saves the checkpoint.
   * A method, so a projection of a narrower union still fits where any projection is taken.
   */
  handle(events: readonly RecordedOf<E>[], tx: Tx): void | Promise<void>;
  /**
   * What happens when the handler keeps failing on an event after the retries:
   * `'stop'` (default): the projection stops in the `failed` state, with the
   * error and the event's position; nothing is skipped.
   * `'park'`: the event is recorded as parked (with the error) and the
   * projection goes on after it.
   */
  onFailure?: 'stop' | 'park';
  /**
   * `'transactional'` (default): the handler writes through the transaction
   * it is given, which also saves the checkpoint: each event counts exactly
   * once. `'external'`: the handler's effects live elsewhere (publishing to a
   * transport, calling a service); it may be async on every adapter, runs
   * before the checkpoint is saved, and a batch may run again after a crash:
   * at least once.
   */
  effects?: 'transactional' | 'external';
  /**
   * The version of the read model: a positive integer, default 1. Raise it
   * when the model changes in a way that needs a rebuild, and let the new
   * version write tables of its own (`order_summaries_v2`): a runner started
   * with a version newer than the live one builds it from the first event,
   * side by side with the old one (checkpoint kept per name and version), and
   * records it as live once it has caught up. A runner given a version older
   * than the live one refuses to run it. Reads find the live version with the
   * runner's `liveVersion(name)` or the adapter's `readLiveProjectionVersion`.
   */
  version?: number;
  /**
   * Called once, by the runner that made this version live, right after the
   * switch, in a transaction of its own, with the version live before (e.g.
   * to drop its tables). Runners of the old version in other processes stop
   * at their next batch or check; one caught in the middle of a batch then
   * fails that batch against a dropped table and stops as superseded. Errors
   * are reported (`onError`, `lastError`) and not retried: the switch stands.
   */
  retire?: (tx: Tx, previousVersion: number) => void | Promise<void>;
}

/**
 * Checks a projection definition and returns it, typed for the adapter's
 * transaction and, when given, the event union it reads.
 *
 * @example
 * const carts = defineProjection<Database, CartEvent>({
 *   name: 'carts',
 *   handles: ['ItemAdded'],
 *   handle: (events, db) => { for (const e of events) if (e.type === 'ItemAdded') insert(db, e.data.sku); },
 * });
 */
export function defineProjection<Tx, E extends Event = Event>(projection: Projection<Tx, E>): Projection<Tx, E> {
  return projection;
}

export type ProjectionState = 'stopped' | 'catching-up' | 'running' | 'failed' | 'rebuilding' | 'paused';

export interface ProjectionError {
  message: string;
  stack?: string;
  /** Position of the event the handler failed on. */
  position: number;
  at: Date;
}

export interface ProjectionStatus {
  name: string;
  /**
   * `'catching-up'` also while this version is newer than the live one (it is
   * built side by side and becomes live once caught up); `'stopped'`, with a
   * `lastError` saying so, when it is older than the live one (superseded);
   * `'paused'` while paused on the database (`ProjectionBackend.setPaused`).
   */
  state: ProjectionState;
  /** The version this runner runs (`Projection.version`, default 1). */
  version: number;
  /** The version recorded as live, as last read (1 until a newer one switched). */
  liveVersion: number;
  /** Every event up to this position has been applied (or skipped as not handled). */
  checkpoint: number;
  /** The store's head position when last seen. */
  head: number;
  /** Positions between the checkpoint and the head: an upper bound of the events still to apply. */
  lag: number;
  /** The error the projection stopped on, or the last one it recovered from. */
  lastError?: ProjectionError;
  /** Events parked so far by this runner (`onFailure: 'park'`). */
  parked: number;
}

export interface RebuildProgress {
  projection: string;
  /** Position reached. */
  position: number;
  /** The head position when the rebuild started: the rebuild is done past it. */
  target: number;
  /** Events applied by the rebuild so far. */
  applied: number;
  /** Fraction of the positions done, 0–1. */
  fraction: number;
  /** Events applied per second so far. */
  rate: number;
  /** Estimated seconds left (positions left at the current position rate). */
  etaSeconds: number;
}

export interface ParkedEvent {
  projection: string;
  /** The projection version that parked it. */
  version: number;
  event: RecordedEvent;
  error: string;
  parkedAt: Date;
}

/** Which projection version a commit belongs to: the backend refuses it once a newer version is live. */
export interface ProjectionVersionRef {
  /** The projection's name (the checkpoint name of versions above 1 is {@link projectionVersionKey}). */
  projection: string;
  version: number;
}

/**
 * The name a projection version's checkpoint, parked events and lease are
 * kept under: the name itself for version 1 (as before versions existed),
 * `<name>@v<version>` above (`@` cannot occur in a projection name).
 */
export function projectionVersionKey(name: string, version = 1): string {
  return version === 1 ? name : `${name}@v${version}`;
}

/** The name and version of a key made by {@link projectionVersionKey}. */
export function parseProjectionVersionKey(key: string): { name: string; version: number } {
  const match = /^(.*)@v([0-9]+)$/.exec(key);
  return match ? { name: match[1] as string, version: Number(match[2]) } : { name: key, version: 1 };
}

/** One batch for {@link ProjectionBackend.commit}. */
export interface ProjectionCommit<Tx> {
  /** The checkpoint's name: {@link projectionVersionKey} of the projection's name and version. */
  name: string;
  /** The checkpoint the batch was read from; the commit is refused when the saved one differs. */
  expected: number;
  /** The checkpoint saved with the batch. */
  checkpoint: number;
  /** The batch's writes, through the transaction. */
  work?: (tx: Tx) => void | Promise<void>;
  /** The work's effects are outside the database (`effects: 'external'`): it may run before the transaction. */
  external?: boolean;
  /** Refuse the commit when a newer version of the projection is live. */
  version?: ProjectionVersionRef;
  /**
   * A rebuild's reset: the parked events of `name` are deleted in the same transaction (the replay parks
   * again those that still fail; those that now apply are parked no more).
   */
  resetParked?: boolean;
}

/**
 * What a storage adapter gives the projection runner: transactions that
 * carry the checkpoint, and a signal for new events. SQLite and PostgreSQL
 * implement it; the runner (retries, batching, status, rebuilds) is the same
 * for both.
 */
/** A projection's requests from other processes, as `ProjectionBackend.loadControl` reads them. */
export interface ProjectionControl {
  paused: boolean;
  /** When a rebuild was requested (ms since the epoch), or null. */
  rebuildRequestedAt: number | null;
  /**
   * The version the rebuild is asked of: only the runner of that version
   * takes it. Null or absent (a request recorded before requests named a
   * version, or by a backend that records none): the version live when a
   * runner reads it.
   */
  rebuildVersion?: number | null;
}

/**
 * `version` as a rebuild request may name it: a positive integer, else a
 * `ValidationError` at `version`; undefined stays undefined (the live one).
 *
 * @example
 * const version = checkRebuildVersion(given); // in ProjectionBackend.requestRebuild
 */
export function checkRebuildVersion(version: unknown): number | undefined {
  if (version === undefined) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new ValidationError({ path: 'version', message: `must be a positive integer, got ${String(version)}` });
  }
  return version;
}

export interface ProjectionBackend<Tx> {
  readonly store: EventStore;
  /**
   * The saved checkpoint of a projection (0 when it never ran). `name` is the
   * checkpoint's name: {@link projectionVersionKey} of the projection's name
   * and version (likewise for `commit`, `park` and `listParked`).
   */
  loadCheckpoint(name: string): Promise<number>;
  /**
   * Runs `work` and saves `checkpoint` in one transaction, but only if the
   * saved checkpoint is still `expected` (another runner did not move it)
   * and, when `version` is given, no newer version of the projection is
   * recorded as live: returns false, writing nothing, otherwise.
   */
  commit(batch: ProjectionCommit<Tx>): Promise<boolean>;
  /** Records a parked event and moves the checkpoint past it, in one transaction (refused like `commit`). */
  park(
    name: string,
    expected: number,
    event: RecordedEvent,
    error: string,
    version?: ProjectionVersionRef,
  ): Promise<boolean>;
  /**
   * The version of `projection` (its name) recorded as live; 1 when none was
   * recorded. A backend without it (and `recordLiveVersion`) runs version 1 only.
   */
  loadLiveVersion?(projection: string): Promise<number>;
  /**
   * Records `version` as the live version of `projection` if it is newer than
   * the recorded one, in one transaction; returns the version live before
   * (so a result of `version` or more means nothing changed).
   */
  recordLiveVersion?(projection: string, version: number): Promise<number>;
  listParked(name?: string): Promise<ParkedEvent[]>;
  /**
   * What other processes asked of `projection` (its name, every version)
   * through the database (`setPaused`, `factline projections pause|rebuild`).
   * A running runner reads it before a batch, at most every 100 ms: while
   * paused it holds in the `'paused'` state; a rebuild request naming its
   * version (or none, while its version is live) it honours as `rebuild`
   * would, then clears it. A backend without it takes no requests.
   */
  loadControl?(projection: string): Promise<ProjectionControl>;
  /** Pauses or resumes `projection` for every runner on this database. */
  setPaused?(projection: string, paused: boolean): Promise<void>;
  /**
   * Asks the runner of `version` of `projection` for a rebuild (default: the
   * version recorded as live when the request is written; a version not a
   * positive integer is a `ValidationError`); resolves with the request's
   * time (ms since the epoch). One request is kept per projection: a newer
   * one replaces it.
   */
  requestRebuild?(projection: string, version?: number): Promise<number>;
  /**
   * Clears the rebuild request made at `requestedAt` (a newer one stays);
   * false when it was not there any more (another runner took it).
   */
  clearRebuildRequest?(projection: string, requestedAt: number): Promise<boolean>;
  /** Runs `work` (e.g. `init`) in a transaction. */
  transaction(work: (tx: Tx) => void | Promise<void>): Promise<void>;
  /** Resolves when events after `position` may have been appended, or after `timeoutMs`, or on `signal`. */
  waitForAppends(position: number, timeoutMs: number, signal: AbortSignal): Promise<void>;
}
