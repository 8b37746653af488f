import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError, type Lease, type LeaseProvider } from '@factline/core';
import { createLeasedLoop, type LeasedWork } from '@factline/core/adapter';
import { settlesWithin, testLeaseConformance, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { startForwarder } from '../../core/src/testing/fixtures/forwarder.ts';
import { postgresUnavailable, postgresUrl } from './fixtures/server.ts';
import { advisoryLockKey, createPostgresLeases } from './lease.ts';

const unavailable = await postgresUnavailable();
let providers = 0;
const applicationNames = new WeakMap<LeaseProvider, string>();
/** Lease keys of this run only: other test processes share the server. */
const run = `${process.pid}-${Date.now()}`;

testLeaseConformance({
  name: 'postgres (session advisory locks)',
  skip: unavailable,
  createProvider: () => {
    const applicationName = `factline-lease-conformance-${run}-${++providers}`;
    const provider = createPostgresLeases({
      connection: { connectionString: postgresUrl, application_name: applicationName },
      // Keys from the names, which the suite makes unique.
      keyOf: advisoryLockKey,
      checkMs: 100,
    });
    applicationNames.set(provider, applicationName);
    return provider;
  },
  // The session ends as in a crash: the server releases its locks.
  loseLeases: async (provider) => {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
        applicationNames.get(provider),
      ]);
    } finally {
      await client.end();
    }
  },
});

describe('postgres leases: a holder gone silent', { skip: unavailable }, () => {
  it('loses its leases to a stand-by once silent for max(10 s, 5 × checkMs): the server ends its session', async () => {
    const target = new URL(postgresUrl);
    const forwarder = await startForwarder(() => Number(target.port || 5432));
    const throughForwarder = new URL(postgresUrl);
    throughForwarder.hostname = '127.0.0.1';
    throughForwarder.port = String(forwarder.port);
    const name = `silent-${run}`;
    const holder = createPostgresLeases({
      connection: { connectionString: throughForwarder.href, application_name: `factline-lease-silent-${run}` },
      keyOf: advisoryLockKey,
      checkMs: 100,
    });
    const standBy = createPostgresLeases({
      connection: { connectionString: postgresUrl },
      keyOf: advisoryLockKey,
      checkMs: 100,
    });
    try {
      assert.equal(await holder.lease(name).acquire(), true);
      assert.equal(await standBy.lease(name).acquire(), false, 'held by the first');
      // Its host gone, or the network cut with no reset: the server hears nothing more from the holder.
      forwarder.freeze();
      const frozenAt = Date.now();
      let taken = false;
      while (!taken && Date.now() - frozenAt < 20_000) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        taken = await standBy.lease(name).acquire();
      }
      const after = Date.now() - frozenAt;
      // Without the session's timeout the server kept the lock until TCP gave up, hours later.
      assert.ok(taken, `the stand-by took the lease ${after} ms after the holder went silent`);
      assert.ok(after >= 9_000, `taken after ${after} ms: before the 10 s of silence the holder is allowed`);
    } finally {
      await forwarder.close();
      await Promise.allSettled([holder.close(), standBy.close()]);
    }
  });
});

describe('postgres leases under a leased loop: the lease connection hangs', { skip: unavailable }, () => {
  it("stops the holder's work as lost once a renewal goes unanswered max(checkMs, 1000) ms, before a stand-by can take the lease", async () => {
    const target = new URL(postgresUrl);
    const forwarder = await startForwarder(() => Number(target.port || 5432));
    const throughForwarder = new URL(postgresUrl);
    throughForwarder.hostname = '127.0.0.1';
    throughForwarder.port = String(forwarder.port);
    const name = `hung-${run}`;
    const checkMs = 100;
    const holderLeases = createPostgresLeases({
      connection: { connectionString: throughForwarder.href, application_name: `factline-lease-hung-${run}` },
      keyOf: advisoryLockKey,
      checkMs,
    });
    const standByLeases = createPostgresLeases({
      connection: { connectionString: postgresUrl },
      keyOf: advisoryLockKey,
      checkMs,
    });
    const log: string[] = [];
    const work = (who: string, lease: Lease): LeasedWork => ({
      lease,
      async start() {
        log.push(`${who}:start`);
      },
      async stop(reason) {
        if (log.includes(`${who}:start`)) log.push(`${who}:stop:${reason}`);
      },
    });
    const holderWork = work('holder', holderLeases.lease(name));
    const standByWork = work('standby', standByLeases.lease(name));
    const errors: unknown[] = [];
    const holder = createLeasedLoop([holderWork], { checkMs, onError: (_w, error) => errors.push(error) });
    const standBy = createLeasedLoop([standByWork], { checkMs });
    try {
      await settlesWithin(holder.start(), 5000, 'holder.start()');
      await settlesWithin(standBy.start(), 5000, 'standBy.start()');
      assert.deepEqual([holder.isHeld(holderWork), standBy.isHeld(standByWork)], [true, false]);
      // The connection stays open and silent: the renewal's SELECT 1 gets no answer.
      forwarder.freeze();
      const frozenAt = performance.now();
      await waitUntil(() => log.includes('holder:stop:lost'), "the holder's work stopped as lost", 5000);
      const lostAfter = performance.now() - frozenAt;
      assert.ok(lostAfter < 3000, `stopped ${Math.round(lostAfter)} ms after the connection hung`);
      assert.ok(
        errors.some((error) => isTimeoutError(error) && /lease '.*hung-.*'.*renew/.test(error.message)),
        String(errors),
      );
      // The server releases the lock once the session has been silent for max(10 s, 5 × checkMs).
      await waitUntil(() => standBy.isHeld(standByWork), 'the stand-by taking over', 20_000, 50);
      assert.deepEqual(log.slice(0, 3), ['holder:start', 'holder:stop:lost', 'standby:start']);
    } finally {
      await forwarder.close();
      await settlesWithin(Promise.all([holder.stop(), standBy.stop()]), 5000, 'stop()');
      await Promise.allSettled([holderLeases.close(), standByLeases.close()]);
    }
  });
});
