import type { LeaseProvider } from '@factline/core';
import { testLeaseConformance } from '@factline/core/testing';
import pg from 'pg';
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
