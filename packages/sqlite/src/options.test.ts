import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { getInMemoryTransport, isValidationError, type ValidationError } from '@factline/core';
import { createSqliteLease } from './lease.ts';
import { getSqliteDeadLetterStore, getSqliteInbox } from './messaging/sqlite-consumer-stores.ts';
import { getSqliteTransport } from './messaging/sqlite-transport.ts';
import { getSqliteOutbox, startSqliteOutboxRelay } from './outbox/sqlite-outbox.ts';
import { startSqliteProjections } from './projections/sqlite-projections.ts';
import { getSqliteEventStore, openSqliteDatabase } from './store/sqlite-event-store.ts';

async function issuePaths(work: () => unknown): Promise<string[]> {
  try {
    await work();
  } catch (error) {
    assert.ok(isValidationError(error), `expected a ValidationError, got ${String(error)}`);
    return (error as ValidationError).issues.map((issue) => issue.path);
  }
  assert.fail('expected a ValidationError, but it succeeded');
}

const store = getSqliteEventStore({ path: ':memory:' });
const database = store.database;
const outbox = getSqliteOutbox({ database });
const transport = getSqliteTransport({ database });
after(async () => {
  await transport.close();
  await store.close();
});

// factory call with a misspelt or ill-typed option → the path the error must name.
const cases: [string, () => unknown, string][] = [
  [
    'getSqliteEventStore',
    () => getSqliteEventStore({ path: ':memory:', busyTimeout: 5 } as never),
    'getSqliteEventStore.busyTimeout',
  ],
  [
    'getSqliteEventStore kind',
    () => getSqliteEventStore({ path: ':memory:', busyTimeoutMs: '5000' } as never),
    'getSqliteEventStore.busyTimeoutMs',
  ],
  [
    'getSqliteEventStore limits',
    () => getSqliteEventStore({ path: ':memory:', limits: { maxEventByte: 1 } } as never),
    'getSqliteEventStore.limits.maxEventByte',
  ],
  [
    'getSqliteEventStore inline projection (an onFailure the runner refuses)',
    () =>
      getSqliteEventStore({
        path: ':memory:',
        inlineProjections: [{ name: 'seen', handles: ['Seen'], handle: () => {}, onFailure: 'skip' as never }],
      }),
    'getSqliteEventStore.inlineProjections[0].onFailure',
  ],
  [
    'openSqliteDatabase',
    () => openSqliteDatabase(':memory:', { synchronous: 'off' } as never),
    'openSqliteDatabase.synchronous',
  ],
  ['openSqliteDatabase path', () => openSqliteDatabase(5 as never), 'openSqliteDatabase.path'],
  [
    'getSqliteTransport',
    () => getSqliteTransport({ database, pollInterval: 5 } as never),
    'getSqliteTransport.pollInterval',
  ],
  [
    'getSqliteTransport path beside database',
    () => getSqliteTransport({ database, path: 'other.db' }),
    'getSqliteTransport.path',
  ],
  [
    'getSqliteTransport connection setting beside database',
    () => getSqliteTransport({ database, busyTimeoutMs: 60_000 }),
    'getSqliteTransport.busyTimeoutMs',
  ],
  [
    'getSqliteTransport kind',
    () => getSqliteTransport({ path: ':memory:', busyTimeoutMs: '5000' } as never),
    'getSqliteTransport.busyTimeoutMs',
  ],
  [
    "getSqliteTransport (a pollIntervalMs over a timer's limit)",
    () => getSqliteTransport({ database, pollIntervalMs: 2 ** 31 }),
    'getSqliteTransport.pollIntervalMs',
  ],
  ['subscribe', () => transport.subscribe('t', 'g', { visibility: 5 } as never), 'subscribe options.visibility'],
  ['getSqliteInbox', () => getSqliteInbox({ database, groupcommit: false } as never), 'getSqliteInbox.groupcommit'],
  [
    'getSqliteInbox maxWriteHoldMs kind',
    () => getSqliteInbox({ database, maxWriteHoldMs: 0 }),
    'getSqliteInbox.maxWriteHoldMs',
  ],
  [
    'getSqliteInbox maxWriteHoldMs over a timer',
    () => getSqliteInbox({ database, maxWriteHoldMs: 2 ** 31 }),
    'getSqliteInbox.maxWriteHoldMs',
  ],
  [
    'getSqliteInbox maxWriteHoldMs fractional',
    () => getSqliteInbox({ database, maxWriteHoldMs: 1.5 }),
    'getSqliteInbox.maxWriteHoldMs',
  ],
  [
    'getSqliteDeadLetterStore',
    () => getSqliteDeadLetterStore({ database, db: database } as never),
    'getSqliteDeadLetterStore.db',
  ],
  ['getSqliteOutbox', () => getSqliteOutbox({ database, clock: Date.now } as never), 'getSqliteOutbox.clock'],
  [
    'startSqliteOutboxRelay',
    () => startSqliteOutboxRelay(outbox, getInMemoryTransport(), { pollMS: 5 } as never),
    'startSqliteOutboxRelay.pollMS',
  ],
  [
    "startSqliteOutboxRelay (a pollMs over a timer's limit)",
    () => startSqliteOutboxRelay(outbox, getInMemoryTransport(), { pollMs: 2_147_483_648 }),
    'startSqliteOutboxRelay.pollMs',
  ],
  [
    "startSqliteOutboxRelay (a leaseCheckMs over a timer's limit)",
    () => startSqliteOutboxRelay(outbox, getInMemoryTransport(), { leaseCheckMs: 2_147_483_648 }),
    'startSqliteOutboxRelay.leaseCheckMs',
  ],
  [
    'startSqliteProjections',
    () => startSqliteProjections(store, [], { leaseTtl: 5 } as never),
    'startSqliteProjections.leaseTtl',
  ],
  // Over a timer's limit (2^31 - 1 ms) setTimeout fires after 1 ms.
  [
    'startSqliteProjections maxWriteHoldMs kind',
    () => startSqliteProjections(store, [], { maxWriteHoldMs: 0 }),
    'startSqliteProjections.maxWriteHoldMs',
  ],
  ...(['leaseTtlMs', 'leaseCheckMs', 'idleCheckMs', 'maxWriteHoldMs'] as const).map(
    (option): [string, () => unknown, string] => [
      `startSqliteProjections ${option} over a timer`,
      () => startSqliteProjections(store, [], { [option]: 2 ** 31 }),
      `startSqliteProjections.${option}`,
    ],
  ),
  [
    'createSqliteLease',
    () => createSqliteLease({ database, name: 'x', ttlMs: 10, ttl: 1 } as never),
    'createSqliteLease.ttl',
  ],
  // A holder renews on a timer, so before ttlMs: a longer lease outlives a crashed holder by weeks or ages.
  [
    "createSqliteLease (a ttlMs over a timer's limit)",
    () => createSqliteLease({ database, name: 'x', ttlMs: 2 ** 31 }),
    'createSqliteLease.ttlMs',
  ],
  [
    'createSqliteLease (a fractional ttlMs)',
    () => createSqliteLease({ database, name: 'x', ttlMs: 1.5 }),
    'createSqliteLease.ttlMs',
  ],
  [
    "startSqliteOutboxRelay (a holdBackoffMaxMs over a timer's limit)",
    () => startSqliteOutboxRelay(outbox, getInMemoryTransport(), { holdBackoffMaxMs: 2 ** 31 }),
    'startSqliteOutboxRelay.holdBackoffMaxMs',
  ],
];

describe('options of the SQLite factories and methods', () => {
  for (const [name, work, path] of cases) {
    it(`${name}: refuses it with a ValidationError at ${path}`, async () => {
      assert.deepEqual(await issuePaths(work), [path]);
    });
  }
});
