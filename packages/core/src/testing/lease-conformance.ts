import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Lease, LeaseProvider } from '../lease/types.ts';
import { waitUntil } from './wait-until.ts';

export interface LeaseConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /**
   * A new provider on the shared backend, for another holder (as another
   * process would be). Closed by the suite when its case ends.
   */
  createProvider: () => Promise<LeaseProvider> | LeaseProvider;
  /**
   * Takes `provider`'s leases away the way a crash does (ends its session,
   * lets its rows expire), without telling it. Without it the loss cases are
   * skipped with the reason.
   */
  loseLeases?: (provider: LeaseProvider) => Promise<void>;
  /** Called once after the whole suite. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason. */
  skip?: string | false;
}

let counter = 0;
/** A lease name no other case (or run) uses. */
const uniqueName = (label: string) => `conformance:${label}:${process.pid}:${Date.now().toString(36)}:${++counter}`;

/**
 * Registers the lease contract with `node:test`: one holder at a time,
 * taking twice holds once, renewal, release, independence of names, and (with
 * `loseLeases`) a lost lease reported to its holder and free for another.
 * Every `Lease` implementation runs it against itself.
 *
 * @example
 * testLeaseConformance({ name: 'in-memory', createProvider: () => createInMemoryLeases(table) });
 */
export function testLeaseConformance(options: LeaseConformanceOptions): void {
  describe(`Lease conformance: ${options.name}`, { skip: options.skip || false }, () => {
    const open: LeaseProvider[] = [];
    const provider = async () => {
      const created = await options.createProvider();
      open.push(created);
      return created;
    };
    const closeAll = async () => {
      for (const created of open.splice(0)) await created.close();
    };
    after(async () => {
      await closeAll();
      await options.teardown?.();
    });
    const lossSkip = options.loseLeases ? false : 'no loseLeases hook: give the suite one that takes leases away';

    it('one holder at a time: a second holder cannot take a held lease', async () => {
      const name = uniqueName('one');
      const [a, b] = [(await provider()).lease(name), (await provider()).lease(name)];
      assert.equal(await a.acquire(), true);
      assert.equal(a.isHeld(), true);
      assert.equal(await b.acquire(), false);
      assert.equal(b.isHeld(), false);
      assert.equal(await b.renew(), false, 'a stand-by has nothing to renew');
      await closeAll();
    });

    it('the same name gives the same lease; taking it twice holds it once, one release frees it', async () => {
      const name = uniqueName('twice');
      const first = await provider();
      const a = first.lease(name);
      assert.equal(first.lease(name), a);
      assert.equal(a.name, name);
      assert.equal(await a.acquire(), true);
      assert.equal(await a.acquire(), true, 'the holder takes it again');
      await a.release();
      assert.equal(a.isHeld(), false);
      const b = (await provider()).lease(name);
      assert.equal(await b.acquire(), true, 'free after one release');
      await closeAll();
    });

    it('renewal keeps the lease; others are still refused; release lets another take it at once', async () => {
      const name = uniqueName('renew');
      const [a, b] = [(await provider()).lease(name), (await provider()).lease(name)];
      assert.equal(await a.acquire(), true);
      for (let i = 0; i < 3; i++) assert.equal(await a.renew(), true);
      assert.equal(await b.acquire(), false);
      await a.release();
      await a.release(); // Releasing what is not held is a no-op.
      assert.equal(await b.acquire(), true);
      assert.equal(await a.acquire(), false);
      await closeAll();
    });

    it('leases of different names are independent', async () => {
      const [x, y] = [uniqueName('x'), uniqueName('y')];
      const a = await provider();
      const b = await provider();
      assert.equal(await a.lease(x).acquire(), true);
      assert.equal(await b.lease(y).acquire(), true);
      assert.equal(await b.lease(x).acquire(), false);
      assert.equal(await a.lease(y).acquire(), false);
      await closeAll();
    });

    it('closing a provider gives its leases up', async () => {
      const name = uniqueName('close');
      const a = await provider();
      const b = await provider();
      assert.equal(await a.lease(name).acquire(), true);
      await a.close();
      await waitUntil(() => b.lease(name).acquire(), 'the lease free after close', 5000);
      await closeAll();
    });

    it('a lost lease: its holder is told once (renew false, onLost), another takes it', {
      skip: lossSkip,
    }, async () => {
      const name = uniqueName('lost');
      const a = await provider();
      const b = await provider();
      const held: Lease = a.lease(name);
      let told = 0;
      held.onLost(() => told++);
      const removed = held.onLost(() => assert.fail('a removed listener was called'));
      removed();
      assert.equal(await held.acquire(), true);
      await options.loseLeases?.(a);
      await waitUntil(() => b.lease(name).acquire(), 'another holder taking the lost lease', 10_000);
      assert.equal(await held.renew().catch(() => false), false, 'the renewal reports the loss');
      assert.equal(held.isHeld(), false);
      assert.equal(told, 1, 'onLost called once');
      assert.equal(await held.renew().catch(() => false), false);
      assert.equal(told, 1, 'and not again');
      await closeAll();
    });
  });
}
