import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LeaseProvider } from '@factline/core';
import { testLeaseConformance } from '@factline/core/testing';
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
