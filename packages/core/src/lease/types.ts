/**
 * A lease on one named piece of work that must run in one process at a time
 * (an outbox relay, an async projection, a timer or workflow runner): whoever
 * holds it runs the work; the others stand by and try to take it.
 *
 * Adapters implement it on what their database offers (a row with an expiry
 * on SQLite, a session advisory lock on PostgreSQL); the leased loops in core
 * (`createLeasedLoop`, `startOutboxRelay`) use nothing else. Every adapter's
 * implementation runs the lease conformance suite of `@factline/core/testing`.
 */
export interface Lease {
  /** What the lease is of, e.g. `'outbox'` or `'projection:order_summaries'`. */
  readonly name: string;
  /**
   * Takes the lease when it is free (or expired), and keeps it when this
   * holder has it already (taking twice holds it once: one `release` frees
   * it). Resolves true when held. A storage failure rejects with a
   * `StorageError`, and the lease is then not held here.
   */
  acquire(): Promise<boolean>;
  /**
   * For the holder: keeps the lease another term (extends its expiry, checks
   * that the session holding it is alive). Resolves false, and calls the
   * `onLost` listeners, when it is no longer held; a storage failure rejects
   * with a `StorageError` and the lease is then lost too.
   */
  renew(): Promise<boolean>;
  /** True while this holder has the lease, by what it knows without asking the database. */
  isHeld(): boolean;
  /** Gives the lease up, so a stand-by can take it at once; resolves when done (also when not held). */
  release(): Promise<void>;
  /**
   * Called when the lease is lost rather than released: a renewal failed or
   * found it taken over, it expired, or the session holding it ended. The
   * holder must stop its work. Returns the listener's removal.
   */
  onLost(listener: () => void): () => void;
}

/** Hands out the leases of one backend (one connection, one table) to one holder. */
export interface LeaseProvider {
  /** The lease of `name` for this provider's holder (the same object for the same name). */
  lease(name: string): Lease;
  /** Releases every lease still held and closes what the provider opened. */
  close(): Promise<void>;
}
