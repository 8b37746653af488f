import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '@factline/core';
import type pg from 'pg';
import { PoolLedger } from './pool-ledger.ts';

const fakePool = (max: number, connectionTimeoutMillis = 50) =>
  ({ options: { max, connectionTimeoutMillis } }) as pg.Pool;

describe('PoolLedger', () => {
  it('keeps one connection of the pool free: max - 1 slots, and a pool of 1 has 1', () => {
    const ledger = new PoolLedger(fakePool(3));
    assert.equal(ledger.tryAcquire(), true);
    assert.equal(ledger.tryAcquire(), true);
    assert.equal(ledger.tryAcquire(), false);
    ledger.release();
    assert.equal(ledger.tryAcquire(), true);
    assert.equal(new PoolLedger(fakePool(1)).capacity, 1);
  });

  it('a waiter makes yielding holders give back, gets the slot released, and nobody jumps ahead of it', async () => {
    const ledger = new PoolLedger(fakePool(2, 5000));
    let asked = 0;
    ledger.addYielding({ yieldConnections: () => (asked += 1) });
    assert.equal(ledger.tryAcquire(), true);
    const waiting = ledger.acquire('a handler');
    assert.equal(asked, 1);
    assert.equal(ledger.wanted(), true);
    assert.equal(ledger.tryAcquire(), false, 'a yielding holder took the slot a waiter waits for');
    ledger.release();
    await waiting;
    assert.equal(ledger.wanted(), false);
  });

  it("a wait longer than the pool's connectionTimeoutMillis is a TimeoutError naming what waited", async () => {
    const ledger = new PoolLedger(fakePool(2, 30));
    assert.equal(ledger.tryAcquire(), true);
    await assert.rejects(ledger.acquire("the inbox of consumer 'billing'"), (error: unknown) => {
      assert.ok(isTimeoutError(error));
      assert.match(error.message, /inbox of consumer 'billing' waited 30 ms/);
      return true;
    });
    assert.equal(ledger.wanted(), false);
  });
});
