import { randomUUID } from 'node:crypto';
import { type Lease, type LeaseProvider, ValidationError } from '@factline/core';
import { assertIntegerOption, createLostSignal } from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';
import { type Migration, migrate } from './migrations.ts';
import { checkSqliteLeaseOptions } from './options.ts';
import { toStorageError } from './store/sqlite-errors.ts';

/**
 * Leases of the work that must run in one process at a time (a relay, an
 * async projection): SQLite has no session locks, so a lease is a row with an
 * expiry, renewed by its holder.
 */
export const leaseMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'leases of single-runner work',
    up: `
      CREATE TABLE factline_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

/** Default lease time to live, ms: five checks, so a holder keeps it through a few seconds of stall. */
export const DEFAULT_LEASE_TTL_MS = 5000;
/** Default interval of renewals (holder) and attempts to take over (stand-by), ms. */
export const DEFAULT_LEASE_CHECK_MS = 1000;

export interface SqliteLeaseRow {
  holder: string;
  expiresAt: number;
  acquiredAt: number;
}

export interface SqliteLeaseOptions {
  /** The connection the lease rows are written through. */
  database: Database;
  /** What the lease is of, e.g. `'outbox'` or `'projection:order_summaries'`. */
  name: string;
  /**
   * How long a take or a renewal holds the lease, ms: a whole number from 1
   * to 2147483647 (a timer's limit; the holder renews it on a timer).
   */
  ttlMs: number;
  /** This holder's id. Default: a random UUID. */
  holder?: string;
  /** Clock; defaults to `Date.now`. Every process sharing the file must read the same clock. */
  now?: () => number;
}

export interface SqliteLease {
  readonly name: string;
  readonly holder: string;
  /**
   * Takes the lease when it is free, expired or already this holder's, and
   * extends it to now + ttl, in one IMMEDIATE transaction. Returns true when
   * held. A failure (the file busy past its busy timeout) drops the lease
   * here (`isHeld()` is false) and throws a `StorageError`. While a
   * transaction is open on the connection (begun by hand and left open
   * across an `await`) it writes nothing: a lease held stays held until its
   * current end, unrenewed, and one not held is not taken.
   */
  acquire(): boolean;
  /**
   * True while the last successful `acquire` has not expired by this holder's
   * clock (no database read; the expiry counted from before the transaction,
   * so never later than the stored one).
   */
  isHeld(): boolean;
  /**
   * For a holder about to do a unit of work: true while the lease has not
   * expired, renewing it first (`acquire`) when the last take or renewal is
   * `renewAfterMs` old or more. An expired lease is not renewed here: the
   * holder must stop and take it again as a stand-by would. Throws as
   * `acquire` does (the lease is then dropped here).
   *
   * A process busy with work that never yields to timers (a projection
   * catching up on a synchronous database) renews its lease this way.
   */
  hold(renewAfterMs: number): boolean;
  /** Gives the lease up: deletes the row if it is this holder's. */
  release(): void;
  /** The stored row, whoever holds it. */
  read(): SqliteLeaseRow | undefined;
}

/**
 * A time-based lease in `factline_leases` (migration component `leases`).
 * Whoever takes a free or expired row holds it until `expires_at`; the holder
 * renews it before then. No holder can be told it lost the lease: it must
 * stop working once `isHeld()` turns false, so a holder frozen past its expiry
 * may overlap with its successor until it looks again.
 *
 * @example
 * const lease = createSqliteLease({ database: db, name: 'outbox', ttlMs: 5000 });
 * if (lease.acquire()) { ...; if (lease.isHeld()) work(); }
 * lease.release();
 */
export function createSqliteLease(options: SqliteLeaseOptions): SqliteLease {
  checkSqliteLeaseOptions(options);
  const database = options?.database;
  if (database === undefined || typeof database?.prepare !== 'function') {
    throw new ValidationError({ path: 'database', message: 'must be a better-sqlite3 Database' });
  }
  if (typeof options.name !== 'string' || options.name.length === 0) {
    throw new ValidationError({ path: 'name', message: 'must be a non-empty string' });
  }
  const ttlMs = assertIntegerOption(options.ttlMs, 'ttlMs', 1) as number;
  if (ttlMs === undefined) throw new ValidationError({ path: 'ttlMs', message: 'is required' });
  const name = options.name;
  const holder = options.holder ?? randomUUID();
  const now = options.now ?? Date.now;
  let sql: {
    take: Statement<[{ name: string; holder: string; expires: number; now: number }]>;
    get: Statement<[string], { holder: string; expires_at: number; acquired_at: number }>;
    remove: Statement<[string, string]>;
  };
  try {
    migrate(database, 'leases', leaseMigrations);
    sql = {
      // Taken when missing, expired, or already ours; acquired_at kept across renewals.
      take: database.prepare(
        `INSERT INTO factline_leases (name, holder, expires_at, acquired_at) VALUES (@name, @holder, @expires, @now)
         ON CONFLICT (name) DO UPDATE SET
           holder = excluded.holder,
           expires_at = excluded.expires_at,
           acquired_at = CASE WHEN factline_leases.holder = excluded.holder
                              THEN factline_leases.acquired_at ELSE excluded.acquired_at END
         WHERE factline_leases.holder = excluded.holder OR factline_leases.expires_at <= @now`,
      ),
      get: database.prepare('SELECT holder, expires_at, acquired_at FROM factline_leases WHERE name = ?'),
      remove: database.prepare('DELETE FROM factline_leases WHERE name = ? AND holder = ?'),
    };
  } catch (error) {
    throw toStorageError(error);
  }
  const take = database.transaction((at: number): boolean => {
    sql.take.run({ name, holder, expires: at + ttlMs, now: at });
    return sql.get.get(name)?.holder === holder;
  });
  /** The local end of the lease, counted from before the transaction that took it; 0 when not held. */
  let expiresAt = 0;
  /** When it was last taken or renewed (from before the transaction). */
  let renewedAt = 0;

  const acquire = (): boolean => {
    const before = now();
    if (database.inTransaction) {
      // A transaction begun by hand and left open across an await: the write would join it, and its
      // rollback would undo a renewal counted here. Nothing is written; the lease stays as it was.
      return expiresAt > before;
    }
    try {
      // The time inside the transaction decides who may take it (the lock may have been waited for).
      const held = take.immediate(Math.max(before, now()));
      expiresAt = held ? before + ttlMs : 0;
      if (held) renewedAt = before;
      return held;
    } catch (error) {
      expiresAt = 0;
      throw toStorageError(error);
    }
  };

  return {
    name,
    holder,
    acquire,
    isHeld: () => expiresAt > now(),
    hold(renewAfterMs) {
      const at = now();
      if (expiresAt <= at) return false;
      if (at - renewedAt < renewAfterMs) return true;
      return acquire();
    },
    release() {
      expiresAt = 0;
      try {
        sql.remove.run(name, holder);
      } catch (error) {
        throw toStorageError(error);
      }
    },
    read() {
      try {
        const row = sql.get.get(name);
        return row && { holder: row.holder, expiresAt: row.expires_at, acquiredAt: row.acquired_at };
      } catch (error) {
        throw toStorageError(error);
      }
    },
  };
}

/** Checks `leaseTtlMs` and `leaseCheckMs` (check < ttl) and fills in their defaults. */
export function leaseTimings(options: { leaseTtlMs?: number; leaseCheckMs?: number }): {
  ttlMs: number;
  checkMs: number;
} {
  const ttlMs = assertIntegerOption(options.leaseTtlMs, 'leaseTtlMs', 2) ?? DEFAULT_LEASE_TTL_MS;
  const checkMs =
    assertIntegerOption(options.leaseCheckMs, 'leaseCheckMs', 1) ??
    Math.min(DEFAULT_LEASE_CHECK_MS, Math.max(1, Math.floor(ttlMs / 5)));
  if (checkMs >= ttlMs) {
    throw new ValidationError({
      path: 'leaseCheckMs',
      message: `must be less than leaseTtlMs (${ttlMs}), got ${checkMs}: the holder renews every leaseCheckMs`,
    });
  }
  return { ttlMs, checkMs };
}

export interface SqliteLeasesOptions {
  /** The connection the lease rows are written through. */
  database: Database;
  /** How long a take or a renewal holds a lease, ms. */
  ttlMs: number;
  /** This holder's id, shared by its leases. Default: a random UUID. */
  holder?: string;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

/** Core's `Lease` port on one `factline_leases` row. */
function leasePort(lock: SqliteLease): Lease {
  const signal = createLostSignal();
  /** Held by what this port reported; cleared (telling the listeners) when lost. */
  let held = false;
  const lost = () => {
    if (!held) return;
    held = false;
    signal.fire();
  };
  return {
    name: lock.name,
    async acquire() {
      let taken: boolean;
      try {
        taken = lock.acquire();
      } catch (error) {
        lost();
        throw error;
      }
      if (taken) held = true;
      else lost();
      return taken;
    },
    async renew() {
      if (!held) return false;
      let renewed: boolean;
      try {
        // An expired lease is not renewed: someone may have taken it since.
        renewed = lock.hold(0);
      } catch (error) {
        lost();
        throw error;
      }
      if (!renewed) lost();
      return renewed;
    },
    isHeld: () => held && lock.isHeld(),
    async release() {
      held = false;
      lock.release();
    },
    onLost: signal.onLost,
  };
}

/**
 * Core's `LeaseProvider` on `factline_leases`: one holder's leases, each a
 * row with an expiry renewed by its holder (see `createSqliteLease`).
 */
export function createSqliteLeases(options: SqliteLeasesOptions): LeaseProvider {
  const holder = options.holder ?? randomUUID();
  const leases = new Map<string, Lease>();
  return {
    lease(name) {
      let lease = leases.get(name);
      if (!lease) {
        lease = leasePort(
          createSqliteLease({ database: options.database, name, ttlMs: options.ttlMs, holder, now: options.now }),
        );
        leases.set(name, lease);
      }
      return lease;
    },
    async close() {
      for (const lease of leases.values()) {
        if (lease.isHeld()) await lease.release();
      }
    },
  };
}
