import type { EventStore, RecordedEvent } from '../store/types.ts';

/**
 * A projection turns events into a read model. `Tx` is what the adapter hands
 * the handler: for SQLite the better-sqlite3 `Database` (inside a
 * transaction), for PostgreSQL a `pg` client inside a transaction. The handler
 * writes its read model with plain SQL through it, so the writes commit
 * together with the projection's checkpoint: exactly once.
 *
 * @example
 * const orderSummaries = defineProjection<Database>({
 *   name: 'order_summaries',
 *   handles: ['OrderPlaced', 'OrderPaid'],
 *   init: (db) => db.exec('CREATE TABLE IF NOT EXISTS order_summaries (id TEXT PRIMARY KEY, status TEXT)'),
 *   reset: (db) => db.exec('DELETE FROM order_summaries'),
 *   handle: (events, db) => { for (const e of events) ... },
 * });
 */
export interface Projection<Tx = unknown> {
  /** Unique per store: `[a-z0-9_.-]`, at most 100 characters. Checkpoints are kept under it. */
  name: string;
  /** The event types the handler receives; others are skipped (and still counted as passed). */
  handles: readonly string[];
  /** Creates the read model's tables; runs once when the runner starts, in a transaction. */
  init?: (tx: Tx) => void | Promise<void>;
  /** Empties the read model for a rebuild; runs in the transaction that resets the checkpoint. */
  reset?: (tx: Tx) => void | Promise<void>;
  /** Applies a batch of events, in position order, inside the transaction that saves the checkpoint. */
  handle: (events: readonly RecordedEvent[], tx: Tx) => void | Promise<void>;
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
}

/** Checks a projection definition and returns it (typed for the adapter's transaction). */
export function defineProjection<Tx>(projection: Projection<Tx>): Projection<Tx> {
  return projection;
}

export type ProjectionState = 'stopped' | 'catching-up' | 'running' | 'failed' | 'rebuilding';

export interface ProjectionError {
  message: string;
  stack?: string;
  /** Position of the event the handler failed on. */
  position: number;
  at: Date;
}

export interface ProjectionStatus {
  name: string;
  state: ProjectionState;
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
  event: RecordedEvent;
  error: string;
  parkedAt: Date;
}

/**
 * What a storage adapter gives the projection runner: transactions that
 * carry the checkpoint, and a signal for new events. SQLite and PostgreSQL
 * implement it; the runner (retries, batching, status, rebuilds) is the same
 * for both.
 */
export interface ProjectionBackend<Tx> {
  readonly store: EventStore;
  /** The saved checkpoint of a projection (0 when it never ran). */
  loadCheckpoint(name: string): Promise<number>;
  /**
   * Runs `work` and saves `checkpoint` in one transaction, but only if the
   * saved checkpoint is still `expected` (another runner did not move it):
   * returns false, writing nothing, when it moved.
   */
  commit(
    name: string,
    expected: number,
    checkpoint: number,
    work?: (tx: Tx) => void | Promise<void>,
    /** The work's effects are outside the database (`effects: 'external'`): it may run before the transaction. */
    external?: boolean,
  ): Promise<boolean>;
  /** Records a parked event and moves the checkpoint past it, in one transaction. */
  park(name: string, expected: number, event: RecordedEvent, error: string): Promise<boolean>;
  listParked(name?: string): Promise<ParkedEvent[]>;
  /** Runs `work` (e.g. `init`) in a transaction. */
  transaction(work: (tx: Tx) => void | Promise<void>): Promise<void>;
  /** Resolves when events after `position` may have been appended, or after `timeoutMs`, or on `signal`. */
  waitForAppends(position: number, timeoutMs: number, signal: AbortSignal): Promise<void>;
}
