import type { Database } from 'better-sqlite3';

/**
 * How long a writer that pauses leaves the file's write lock free, ms. SQLite
 * queues nobody: a process waiting for the lock (`busy_timeout`) sleeps and
 * tries again, 100 ms at a time once it has waited 228 ms, so a lock free for
 * longer than that is tried by every process waiting for it.
 */
export const WRITE_PAUSE_MS = 150;

/** Default `maxHoldMs`: well within the 5 s busy timeout of Factline's connections and the CLI's. */
export const DEFAULT_MAX_WRITE_HOLD_MS = 1000;

export interface WriteShareOptions {
  /**
   * How long this connection's transactions may hold the write lock back to
   * back (free less than half the time) before the next one waits until the
   * lock has been free for `WRITE_PAUSE_MS`. Default 1000.
   */
  maxHoldMs?: number;
  /** Injected for tests. Default `performance.now`. */
  now?: () => number;
  /** Injected for tests. Default a timer. */
  sleep?: (ms: number) => Promise<void>;
}

export interface WriteShare {
  /**
   * Awaited before each write transaction: one turn of the event loop (every
   * call on the connection is synchronous, so a loop of them would otherwise
   * hold up this process's timers and `setImmediate` work), then, once the
   * transactions of the current run held the lock for `maxHoldMs`, a pause
   * that leaves it free for `WRITE_PAUSE_MS` (less the time it was free
   * already). A writer that leaves the lock free at least as long as it held
   * it (a live projection between appends) never pauses.
   */
  turn(): Promise<void>;
  /** Runs one write transaction (synchronous), counting the time it held the lock. */
  write<T>(transaction: () => T): T;
}

/** The current run of one connection's write transactions. */
interface Run {
  /** Time the run's transactions held the lock, ms. */
  heldMs: number;
  /** When the last transaction ended, and how long it held the lock. */
  lastEnd: number;
  lastHeldMs: number;
}

// One run per connection: the writers sharing a connection (two runners on one store) hold its lock together.
const runs = new WeakMap<Database, Run>();

/**
 * Shares the file's write lock with other processes while this connection
 * writes back to back (a projection catching up): SQLite has no fair queue,
 * and a lock taken again one turn after each commit is practically never free
 * when a waiting process tries it, so that process fails with `SQLITE_BUSY`
 * after its busy timeout (the CLI's `projections pause`, another instance's
 * append). After `maxHoldMs` of holding, the writer leaves the lock free for
 * `WRITE_PAUSE_MS`, so a waiting process gets it within `maxHoldMs` + one
 * transaction + the pause.
 *
 * @example
 * const share = shareWriteLock(db, { maxHoldMs: 1000 });
 * await share.turn();
 * share.write(() => db.transaction(() => save.run(name, next)).immediate());
 */
export function shareWriteLock(db: Database, options: WriteShareOptions = {}): WriteShare {
  const maxHoldMs = options.maxHoldMs ?? DEFAULT_MAX_WRITE_HOLD_MS;
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let run = runs.get(db);
  if (!run) {
    run = { heldMs: 0, lastEnd: Number.NEGATIVE_INFINITY, lastHeldMs: 0 };
    runs.set(db, run);
  }
  const current = run;
  return {
    async turn() {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (current.heldMs < maxHoldMs) return;
      const free = now() - current.lastEnd;
      if (free < WRITE_PAUSE_MS) await sleep(WRITE_PAUSE_MS - free);
      current.heldMs = 0;
    },
    write(transaction) {
      const start = now();
      const free = start - current.lastEnd;
      // Free at least as long as it was last held, or for a whole pause: whoever waited had their chance.
      if (free >= current.lastHeldMs || free >= WRITE_PAUSE_MS) current.heldMs = 0;
      try {
        return transaction();
      } finally {
        const end = now();
        current.lastHeldMs = end - start;
        current.heldMs += current.lastHeldMs;
        current.lastEnd = end;
      }
    },
  };
}
