import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { getInMemoryTransport, isValidationError, type ValidationError } from '@factline/core';
import pg from 'pg';
import { postgresUrl } from './fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './messaging/postgres-consumer-stores.ts';
import { getPostgresTransport } from './messaging/postgres-transport.ts';
import type { PostgresOutbox } from './outbox/postgres-outbox.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from './outbox/postgres-outbox.ts';
import { getPostgresProjectionBackend, startPostgresProjections } from './projections/postgres-projections.ts';
import { getPostgresSnapshotStore } from './snapshots/postgres-snapshot-store.ts';
import type { PostgresEventStore } from './store/postgres-event-store.ts';
import { getPostgresEventStore } from './store/postgres-event-store.ts';
import { getPostgresTracer } from './tracing/postgres-tracer.ts';
import { getPostgresTimerStore } from './workflows/postgres-timer-store.ts';

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
  [
    "getPostgresEventStore (a notifyIntervalMs over a timer's limit)",
    () => getPostgresEventStore({ connectionString, schema: 'options_never_created', notifyIntervalMs: 2 ** 31 }),
    'getPostgresEventStore.notifyIntervalMs',
  ],
  [
    'getPostgresEventStore (notifyIntervalMs with notifyAppends: false: no notification to space out)',
    () =>
      getPostgresEventStore({
        connectionString,
        schema: 'options_never_created',
        notifyAppends: false,
        notifyIntervalMs: 50,
      }),
    'getPostgresEventStore.notifyIntervalMs',
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
    "startPostgresOutboxRelay (a holdBackoffMaxMs over a timer's limit)",
    () => startPostgresOutboxRelay(outbox, getInMemoryTransport(), { holdBackoffMaxMs: 2 ** 31 }),
    'startPostgresOutboxRelay.holdBackoffMaxMs',
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

// A pool of the caller's beside the options of a pool the factory would open: each factory that takes both.
const pool = new pg.Pool({ connectionString });
after(() => pool.end());
const withPool: [string, (options: { pool: pg.Pool; connectionString?: string; poolSize?: number }) => unknown][] = [
  ['getPostgresEventStore', (options) => getPostgresEventStore(options)],
  ['getPostgresTransport', (options) => getPostgresTransport({ ...options, listen: false })],
  ['getPostgresInbox', (options) => getPostgresInbox(options)],
  ['getPostgresDeadLetterStore', (options) => getPostgresDeadLetterStore(options)],
  ['getPostgresOutbox', (options) => getPostgresOutbox(options)],
  ['getPostgresTracer', (options) => getPostgresTracer(options)],
  ['getPostgresSnapshotStore', (options) => getPostgresSnapshotStore(options)],
  ['getPostgresTimerStore', (options) => getPostgresTimerStore(options)],
];
for (const [factory, open] of withPool) {
  cases.push(
    [
      `${factory} (pool and connectionString: which database is meant?)`,
      () => open({ pool, connectionString, schema: 'options_never_created' } as never),
      `${factory}.connectionString`,
    ],
    [
      `${factory} (pool and poolSize: the size of a pool it does not open)`,
      () => open({ pool, poolSize: 3, schema: 'options_never_created' } as never),
      `${factory}.poolSize`,
    ],
  );
}
cases.push(
  [
    'getPostgresInbox (maxGroup without groupCommit: no group to size)',
    () => getPostgresInbox({ connectionString, schema: 'options_never_created', maxGroup: 8 }),
    'getPostgresInbox.maxGroup',
  ],
  [
    'getPostgresInbox (maxGroups with groupCommit: false)',
    () => getPostgresInbox({ connectionString, schema: 'options_never_created', groupCommit: false, maxGroups: 4 }),
    'getPostgresInbox.maxGroups',
  ],
);
cases.push([
  'getPostgresTransport (listenConnection with listen: false)',
  () => getPostgresTransport({ connectionString, listen: false, listenConnection: { application_name: 'x' } }),
  'getPostgresTransport.listenConnection',
]);

describe('options of the PostgreSQL factories', () => {
  for (const [name, work, path] of cases) {
    it(`${name}: refuses it with a ValidationError at ${path}`, async () => {
      assert.deepEqual(await issuePaths(work), [path]);
    });
  }
});
