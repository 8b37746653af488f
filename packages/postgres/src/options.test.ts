import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getInMemoryTransport, isValidationError, type ValidationError } from '@factline/core';
import { postgresUrl } from './fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './messaging/postgres-consumer-stores.ts';
import { getPostgresTransport } from './messaging/postgres-transport.ts';
import type { PostgresOutbox } from './outbox/postgres-outbox.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from './outbox/postgres-outbox.ts';
import { getPostgresProjectionBackend, startPostgresProjections } from './projections/postgres-projections.ts';
import type { PostgresEventStore } from './store/postgres-event-store.ts';
import { getPostgresEventStore } from './store/postgres-event-store.ts';

async function issuePaths(work: () => unknown): Promise<string[]> {
  try {
    await work();
  } catch (error) {
    assert.ok(isValidationError(error), `expected a ValidationError, got ${String(error)}`);
    return (error as ValidationError).issues.map((issue) => issue.path);
  }
  assert.fail('expected a ValidationError, but it succeeded');
}

// Options are checked before any connection is made: no server is needed, and none is touched.
const connectionString = postgresUrl;
const store = { pool: {}, schema: 'factline' } as unknown as PostgresEventStore;
const outbox = { pool: {}, schema: 'factline' } as unknown as PostgresOutbox;

// factory call with a misspelt or ill-typed option → the path the error must name.
const cases: [string, () => unknown, string][] = [
  [
    'getPostgresEventStore',
    () => getPostgresEventStore({ connectionString, poolsize: 2 } as never),
    'getPostgresEventStore.poolsize',
  ],
  [
    'getPostgresEventStore kind',
    () => getPostgresEventStore({ connectionString, poolSize: '2' } as never),
    'getPostgresEventStore.poolSize',
  ],
  ['getPostgresEventStore pool', () => getPostgresEventStore({ pool: {} } as never), 'getPostgresEventStore.pool'],
  [
    'getPostgresEventStore inline projection (an onFailure the runner refuses)',
    () =>
      getPostgresEventStore({
        connectionString,
        schema: 'options_never_created',
        inlineProjections: [{ name: 'seen', handles: ['Seen'], handle: () => {}, onFailure: 'skip' as never }],
      }),
    'getPostgresEventStore.inlineProjections[0].onFailure',
  ],
  ['getPostgresEventStore null', () => getPostgresEventStore(null as never), 'getPostgresEventStore'],
  [
    'getPostgresTransport',
    () => getPostgresTransport({ connectionString, pollInterval: 5 } as never),
    'getPostgresTransport.pollInterval',
  ],
  [
    "getPostgresTransport (a pollIntervalMs over a timer's limit)",
    () => getPostgresTransport({ connectionString, listen: false, pollIntervalMs: 2 ** 31 }),
    'getPostgresTransport.pollIntervalMs',
  ],
  ['getPostgresInbox', () => getPostgresInbox({ connectionString, maxGroup: 0 }), 'getPostgresInbox.maxGroup'],
  [
    'getPostgresDeadLetterStore',
    () => getPostgresDeadLetterStore({ connectionString, schemaName: 'x' } as never),
    'getPostgresDeadLetterStore.schemaName',
  ],
  [
    'getPostgresOutbox',
    () => getPostgresOutbox({ connectionString, clock: Date.now } as never),
    'getPostgresOutbox.clock',
  ],
  [
    'startPostgresOutboxRelay',
    () => startPostgresOutboxRelay(outbox, getInMemoryTransport(), { pollMS: 5 } as never),
    'startPostgresOutboxRelay.pollMS',
  ],
  [
    "startPostgresOutboxRelay (a pollMs over a timer's limit)",
    () => startPostgresOutboxRelay(outbox, getInMemoryTransport(), { pollMs: 2_147_483_648 }),
    'startPostgresOutboxRelay.pollMs',
  ],
  [
    "startPostgresOutboxRelay (a leaseCheckMs over a timer's limit)",
    () => startPostgresOutboxRelay(outbox, getInMemoryTransport(), { leaseCheckMs: 2_147_483_648 }),
    'startPostgresOutboxRelay.leaseCheckMs',
  ],
  [
    'getPostgresProjectionBackend',
    () => getPostgresProjectionBackend(store, { listen: false } as never),
    'getPostgresProjectionBackend.listen',
  ],
  [
    'startPostgresProjections',
    () => startPostgresProjections(store, [], { leaseTtlMs: 5 } as never),
    'startPostgresProjections.leaseTtlMs',
  ],
  // Over a timer's limit (2^31 - 1 ms) setTimeout fires after 1 ms.
  ...(['listenReconnectInitialMs', 'listenReconnectMaxMs', 'leaseCheckMs', 'idleCheckMs'] as const).map(
    (option): [string, () => unknown, string] => [
      `startPostgresProjections ${option} over a timer`,
      () => startPostgresProjections(store, [], { [option]: 2 ** 31 }),
      `startPostgresProjections.${option}`,
    ],
  ),
];

describe('options of the PostgreSQL factories', () => {
  for (const [name, work, path] of cases) {
    it(`${name}: refuses it with a ValidationError at ${path}`, async () => {
      assert.deepEqual(await issuePaths(work), [path]);
    });
  }
});
