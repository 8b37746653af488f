import { TimeoutError } from '@factline/core';
import type pg from 'pg';

/** A component that keeps connections only while nobody else needs them (the store's writer). */
export interface YieldingHolder {
  /** Give back every held connection that is idle now, and the others once their work ends. */
  yieldConnections(): void;
}

/** How long a component waits for a connection of a shared pool before a `TimeoutError`, unless the pool says. */
export const DEFAULT_CONNECTION_WAIT_MS = 30_000;

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Counts, per pool, the connections components keep across their own awaits
 * (a handler's transaction, a projection batch, the store's writer), so that
 * every component of a process sharing one pool leaves one connection for
 * short statements (reads, receives, acks): a handler that reads the store
 * inside its transaction always finds one. Held connections are slots: at
 * most `max - 1` at once (a pool of 1 holds its one for such work, and the
 * store's writer holds none there); a component asking for one while none is free first
 * makes the yielding holders give theirs back, then waits its turn, bounded
 * by the pool's `connectionTimeoutMillis` (or 30 s).
 */
export class PoolLedger {
  private held = 0;
  private readonly waiters: Waiter[] = [];
  private readonly yielding = new Set<YieldingHolder>();

  constructor(private readonly pool: pg.Pool) {}

  /** Slots of this pool: its size less the one connection kept for short statements (a pool of 1 has 1). */
  get capacity(): number {
    return Math.max(1, poolMax(this.pool) - 1);
  }

  /** Takes a slot if one is free and nobody waits for one (a yielding holder never jumps the queue). */
  tryAcquire(): boolean {
    if (this.held >= this.capacity || this.waiters.length > 0) return false;
    this.held += 1;
    return true;
  }

  /** Takes a slot, waiting for one (bounded) when none is free. */
  acquire(what: string): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    const waitMs = connectionWaitMs(this.pool);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const at = this.waiters.indexOf(waiter);
          if (at !== -1) this.waiters.splice(at, 1);
          reject(
            new TimeoutError(
              `${what} waited ${waitMs} ms for a connection of its pool (max ${poolMax(this.pool)}): ${this.held} held by handlers' transactions, projection batches and the store's writer; give the pool more connections`,
            ),
          );
        }, waitMs),
      };
      this.waiters.push(waiter);
      for (const holder of this.yielding) holder.yieldConnections();
    });
  }

  /** Gives a slot back; the first waiter gets it. */
  release(): void {
    const next = this.waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve();
      return;
    }
    this.held = Math.max(0, this.held - 1);
  }

  /** Whether a component waits for a slot: a yielding holder then gives its connection back. */
  wanted(): boolean {
    return this.waiters.length > 0;
  }

  /** Registers a holder that gives its slots back on demand; returns the unregister function. */
  addYielding(holder: YieldingHolder): () => void {
    this.yielding.add(holder);
    return () => this.yielding.delete(holder);
  }
}

const ledgers = new WeakMap<pg.Pool, PoolLedger>();

/** The ledger of `pool`, shared by every component of this process using it. */
export function ledgerOf(pool: pg.Pool): PoolLedger {
  let ledger = ledgers.get(pool);
  if (!ledger) {
    ledger = new PoolLedger(pool);
    ledgers.set(pool, ledger);
  }
  return ledger;
}

/** The pool's size (node-postgres's default is 10). */
export function poolMax(pool: pg.Pool): number {
  return pool.options?.max ?? 10;
}

/** How long to wait for a connection of `pool`: its own `connectionTimeoutMillis` when set. */
export function connectionWaitMs(pool: pg.Pool): number {
  const own = pool.options?.connectionTimeoutMillis;
  return typeof own === 'number' && own > 0 ? own : DEFAULT_CONNECTION_WAIT_MS;
}

/**
 * Bounds every wait for a connection of `pool`: a pool without a
 * `connectionTimeoutMillis` gets the default (30 s), after which node-postgres
 * fails the wait (reported as a `TimeoutError`) instead of waiting forever.
 */
export function boundConnectionWaits(pool: pg.Pool): void {
  const options = pool.options as { connectionTimeoutMillis?: number } | undefined;
  if (options && !(typeof options.connectionTimeoutMillis === 'number' && options.connectionTimeoutMillis > 0)) {
    options.connectionTimeoutMillis = DEFAULT_CONNECTION_WAIT_MS;
  }
}
