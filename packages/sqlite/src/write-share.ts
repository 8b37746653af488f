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
  /**
   * The pause `turn` would take, for a writer that schedules its own turns
   * (the SQLite inbox's group commits): how long the next write transaction
   * should wait, ms, until the lock has been free for `WRITE_PAUSE_MS`; 0
   * when it may begin now. Call it again when the wait is over (a timer can
   * fire a little early).
   */
  pauseLeft(): number;
  /**
   * How much longer the current run may hold the lock before `maxHoldMs` is
   * reached, ms, counting the transaction in progress (`write`): a writer
   * that puts many units of work in one transaction (a group commit) ends it
   * when this reaches 0, so that no transaction of its own holds the lock
   * much longer than `maxHoldMs`.
   */
  holdLeft(): number;
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
  /** When the transaction in progress began (undefined: none). */
  writing: number | undefined;
}

// One run per connection: the writers sharing a connection (two runners on one store, an inbox and the
// transport's claims) hold its lock together.
const runs = new WeakMap<Database, Run>();

/**
 * Shares the file's write lock with other processes while this connection
 * writes back to back (a projection catching up, an SQLite inbox's group
 * commits working through a backlog): SQLite has no fair queue,
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
    run = { heldMs: 0, lastEnd: Number.NEGATIVE_INFINITY, lastHeldMs: 0, writing: undefined };
    runs.set(db, run);
  }
  const current = run;
  const pauseLeft = (): number => {
    if (current.heldMs < maxHoldMs) return 0;
    const left = WRITE_PAUSE_MS - (now() - current.lastEnd);
    if (left > 0) return left;
    // The lock was free for a whole pause: whoever waited had their chance, and a new run begins.
    current.heldMs = 0;
    return 0;
  };
  return {
    async turn() {
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let left = pauseLeft(); left > 0; left = pauseLeft()) await sleep(left);
    },
    pauseLeft,
    holdLeft: () => maxHoldMs - current.heldMs - (current.writing === undefined ? 0 : now() - current.writing),
    write(transaction) {
      // A write within another's (a nested call on the connection) is counted with the outer one.
      if (current.writing !== undefined) return transaction();
      const start = now();
      const free = start - current.lastEnd;
      // Free at least as long as it was last held, or for a whole pause: whoever waited had their chance.
      if (free >= current.lastHeldMs || free >= WRITE_PAUSE_MS) current.heldMs = 0;
      current.writing = start;
      try {
        return transaction();
      } finally {
        const end = now();
        current.writing = undefined;
        current.lastHeldMs = end - start;
        current.heldMs += current.lastHeldMs;
        current.lastEnd = end;
      }
    },
  };
}
