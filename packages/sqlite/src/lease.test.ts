import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isStorageError, isValidationError } from '@factline/core';
import { testLeaseConformance } from '@factline/core/testing';
import {
  createSqliteLease,
  createSqliteLeases,
  DEFAULT_LEASE_CHECK_MS,
  DEFAULT_LEASE_TTL_MS,
  leaseTimings,
} from './lease.ts';
import { openSqliteDatabase } from './store/sqlite-event-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-lease-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `lease-${++files}.db`);

/** Two connections on one file, as two processes would have, and a clock the test moves. */
function twoHolders(ttlMs = 100) {
  const path = file();
  const clock = { t: 1000 };
  const now = () => clock.t;
  const dbA = openSqliteDatabase(path, {});
  const dbB = openSqliteDatabase(path, {});
  const a = createSqliteLease({ database: dbA, name: 'outbox', ttlMs, now, holder: 'a' });
  const b = createSqliteLease({ database: dbB, name: 'outbox', ttlMs, now, holder: 'b' });
  const close = () => {
    dbA.close();
    dbB.close();
  };
  return { path, clock, a, b, dbA, dbB, close };
}

describe('sqlite lease', () => {
  it('acquire takes a free lease; renewing extends it and keeps acquired_at', () => {
    const { clock, a, close } = twoHolders();
    try {
      assert.equal(a.read(), undefined);
      assert.equal(a.isHeld(), false);
      assert.equal(a.acquire(), true);
      assert.equal(a.isHeld(), true);
      assert.deepEqual(a.read(), { holder: 'a', expiresAt: 1100, acquiredAt: 1000 });
      clock.t = 1060;
      assert.equal(a.acquire(), true);
      assert.deepEqual(a.read(), { holder: 'a', expiresAt: 1160, acquiredAt: 1000 });
      clock.t = 1159;
      assert.equal(a.isHeld(), true);
      clock.t = 1160;
      assert.equal(a.isHeld(), false, 'held past its expiry by the local clock');
    } finally {
      close();
    }
  });

  it('another holder is refused until the lease expires, then takes it over', () => {
    const { clock, a, b, close } = twoHolders();
    try {
      assert.equal(a.acquire(), true);
      assert.equal(b.acquire(), false);
      assert.equal(b.isHeld(), false);
      clock.t = 1099;
      assert.equal(b.acquire(), false, 'taken one ms before the expiry');
      assert.deepEqual(b.read(), { holder: 'a', expiresAt: 1100, acquiredAt: 1000 });
      clock.t = 1100;
      assert.equal(b.acquire(), true, 'not taken at the expiry');
      assert.deepEqual(b.read(), { holder: 'b', expiresAt: 1200, acquiredAt: 1100 });
      assert.equal(b.isHeld(), true);
      // The old holder cannot renew now, and knows it.
      assert.equal(a.acquire(), false);
      assert.equal(a.isHeld(), false);
      assert.deepEqual(a.read(), { holder: 'b', expiresAt: 1200, acquiredAt: 1100 });
    } finally {
      close();
    }
  });

  it('release deletes only the holder’s own row; a released lease is taken at once', () => {
    const { clock, a, b, close } = twoHolders();
    try {
      assert.equal(a.acquire(), true);
      b.release(); // not b's: nothing happens
      assert.equal(a.read()?.holder, 'a');
      assert.equal(b.acquire(), false);
      clock.t = 1010;
      a.release();
      assert.equal(a.isHeld(), false);
      assert.equal(a.read(), undefined);
      assert.equal(b.acquire(), true, 'refused right after the release');
      assert.deepEqual(b.read(), { holder: 'b', expiresAt: 1110, acquiredAt: 1010 });
    } finally {
      close();
    }
  });

  it('hold: true while unexpired, renewing once the last renewal is old enough; an expired lease is not renewed', () => {
    const { clock, a, b, close } = twoHolders();
    try {
      assert.equal(a.hold(30), false, 'never taken');
      assert.equal(a.acquire(), true);
      clock.t = 1029;
      assert.equal(a.hold(30), true);
      assert.equal(a.read()?.expiresAt, 1100, 'renewed before it was due');
      clock.t = 1030;
      assert.equal(a.hold(30), true);
      assert.equal(a.read()?.expiresAt, 1130);
      clock.t = 1130;
      assert.equal(a.hold(30), false, 'held at its expiry');
      assert.equal(a.read()?.expiresAt, 1130, 'an expired lease renewed by hold');
      // Taken by another holder meanwhile: the due renewal fails and hold says so.
      assert.equal(b.acquire(), true);
      assert.equal(a.acquire(), false);
      clock.t = 1100;
      assert.equal(a.hold(0), false);
    } finally {
      close();
    }
  });

  it('leases of different names are independent', () => {
    const { path, a, close } = twoHolders();
    const db = openSqliteDatabase(path, {});
    try {
      const other = createSqliteLease({ database: db, name: 'projection:x', ttlMs: 100, now: () => 1000 });
      assert.equal(a.acquire(), true);
      assert.equal(other.acquire(), true);
      assert.match(other.holder, /^[0-9a-f-]{36}$/, 'a random UUID by default');
    } finally {
      db.close();
      close();
    }
  });

  it('a renewal that fails (file locked past the busy timeout) throws and drops the lease here', () => {
    const path = file();
    const now = () => 1000;
    const db = openSqliteDatabase(path, { busyTimeoutMs: 0 });
    const blocker = openSqliteDatabase(path, {});
    try {
      const lease = createSqliteLease({ database: db, name: 'outbox', ttlMs: 100, now });
      assert.equal(lease.acquire(), true);
      blocker.exec('BEGIN IMMEDIATE');
      assert.throws(() => lease.acquire(), isStorageError);
      assert.equal(lease.isHeld(), false);
      blocker.exec('ROLLBACK');
      assert.equal(lease.acquire(), true, 'still its own row: taken back');
    } finally {
      blocker.close();
      db.close();
    }
  });

  it('while a transaction begun by hand is open on its connection, a renewal writes nothing and extends nothing', () => {
    const { clock, a, b, dbA, close } = twoHolders();
    try {
      assert.equal(a.acquire(), true);
      clock.t = 1060;
      dbA.exec('BEGIN');
      assert.equal(a.acquire(), true, 'still held, until its current end');
      dbA.exec('ROLLBACK');
      assert.deepEqual(a.read(), { holder: 'a', expiresAt: 1100, acquiredAt: 1000 });
      clock.t = 1100;
      assert.equal(a.isHeld(), false, 'the end this holder counts on is the stored one');
      assert.equal(b.acquire(), true, 'so the other takes it only once this one knows it is gone');
      dbA.exec('BEGIN');
      assert.equal(a.acquire(), false, 'a stand-by takes nothing meanwhile either');
      dbA.exec('ROLLBACK');
    } finally {
      close();
    }
  });

  it('timings: defaults, a check derived from a short TTL, and a check not below the TTL refused', () => {
    assert.deepEqual(leaseTimings({}), { ttlMs: DEFAULT_LEASE_TTL_MS, checkMs: DEFAULT_LEASE_CHECK_MS });
    assert.deepEqual(leaseTimings({ leaseTtlMs: 500 }), { ttlMs: 500, checkMs: 100 });
    assert.deepEqual(leaseTimings({ leaseTtlMs: 500, leaseCheckMs: 499 }), { ttlMs: 500, checkMs: 499 });
    assert.throws(() => leaseTimings({ leaseTtlMs: 500, leaseCheckMs: 500 }), isValidationError);
    assert.throws(() => leaseTimings({ leaseCheckMs: 5000 }), isValidationError);
    assert.throws(() => leaseTimings({ leaseTtlMs: 0 }), isValidationError);
    assert.throws(() => leaseTimings({ leaseCheckMs: 1.5 }), isValidationError);
  });
});

/** Providers on one file, each on its own connection (as processes would be), on one clock the suite moves. */
const conformanceFile = file();
const conformanceClock = { t: Date.now() };
const conformanceDatabases: ReturnType<typeof openSqliteDatabase>[] = [];
const ttlMs = 1000;
testLeaseConformance({
  name: 'sqlite (factline_leases rows)',
  createProvider: () => {
    const database = openSqliteDatabase(conformanceFile, {});
    conformanceDatabases.push(database);
    return createSqliteLeases({ database, ttlMs, now: () => conformanceClock.t });
  },
  // A holder that stops renewing loses its leases once they expire.
  loseLeases: async () => {
    conformanceClock.t += ttlMs + 1;
  },
  teardown: () => {
    for (const database of conformanceDatabases) database.close();
  },
});
