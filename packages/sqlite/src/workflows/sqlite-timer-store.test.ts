import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isValidationError } from '@factline/core';
import { testTimerStoreConformance } from '@factline/core/testing';
import {
  getSqliteEventStore,
  getSqliteTimerStore,
  openSqliteDatabase,
  sqliteTimerProjection,
  startSqliteWorkflowTimers,
} from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-timers-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const open = (path: string) => {
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  return { store, timers: getSqliteTimerStore({ database: store.database }) };
};

testTimerStoreConformance({
  name: 'sqlite (file)',
  createEnvironment: () => {
    const path = join(dir, `timers-${++files}.db`);
    let current = open(path);
    return {
      get store() {
        return current.store;
      },
      get timers() {
        return current.timers;
      },
      reopen: async () => {
        await current.store.close();
        current = open(path);
        return current;
      },
      close: () => current.store.close(),
    };
  },
});

test('the timer table is created once per file, as component workflow-timers', async () => {
  const path = join(dir, 'migrations.db');
  const { store } = open(path);
  getSqliteTimerStore({ database: store.database });
  await store.close();
  const db = openSqliteDatabase(path);
  try {
    const rows = db.prepare("SELECT version FROM factline_migrations WHERE component = 'workflow-timers'").all();
    assert.deepEqual(rows, [{ version: 1 }]);
  } finally {
    db.close();
  }
});

test('getSqliteTimerStore refuses unknown options', () => {
  const db = openSqliteDatabase(':memory:');
  try {
    assert.throws(() => getSqliteTimerStore({ database: db, pollMs: 1 } as never), isValidationError);
  } finally {
    db.close();
  }
});

test('getSqliteTimerStore refuses a database that is not a better-sqlite3 connection, saying so', () => {
  for (const database of [{}, 'app.db']) {
    assert.throws(
      () => getSqliteTimerStore({ database } as never),
      (e: unknown) =>
        isValidationError(e) &&
        e.issues[0]?.path === 'getSqliteTimerStore.database' &&
        /better-sqlite3/.test(e.issues[0].message),
    );
  }
});

test('startSqliteWorkflowTimers refuses a pollMs, leaseTtlMs or leaseCheckMs over a timer’s limit (2147483647 ms), naming it', async () => {
  const store = getSqliteEventStore({
    path: join(dir, `timers-${++files}.db`),
    inlineProjections: [sqliteTimerProjection()],
  });
  try {
    const over = 2_147_483_648;
    for (const [option, given] of [
      ['pollMs', { pollMs: over }],
      ['leaseTtlMs', { leaseTtlMs: over }],
      ['leaseCheckMs', { leaseCheckMs: over }],
    ] as const) {
      await assert.rejects(
        startSqliteWorkflowTimers(store, { handlers: [], ...given }),
        (e: unknown) => isValidationError(e) && e.issues[0]?.path === `startSqliteWorkflowTimers.${option}`,
      );
    }
  } finally {
    await store.close();
  }
});

test('startSqliteWorkflowTimers refuses a bad poller option before it writes a table to the file, naming the option', async () => {
  // A store without the timer projection: neither the timer table nor the lease table is there yet.
  const store = getSqliteEventStore({ path: join(dir, `timers-${++files}.db`) });
  const tables = () =>
    store.database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
  try {
    const before = tables();
    for (const [option, value] of [
      ['batchSize', 0],
      ['concurrency', 1.5],
      ['onError', 'log it'],
      ['logger', console.log],
    ] as const) {
      const refused = await startSqliteWorkflowTimers(store, { handlers: [], [option]: value }).then(
        () => assert.fail(`${option}: ${String(value)} was taken`),
        (error: unknown) => error,
      );
      assert.deepEqual(tables(), before, `refusing ${option}, nothing is written to the file`);
      assert.ok(isValidationError(refused), String(refused));
      assert.equal(refused.issues[0]?.path, `startSqliteWorkflowTimers.${option}`);
    }
  } finally {
    await store.close();
  }
});

test('startSqliteWorkflowTimers refuses a handler that is not one before it writes a table to the file, naming handlers[i]', async () => {
  const store = getSqliteEventStore({ path: join(dir, `timers-${++files}.db`) });
  const tables = () =>
    store.database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
  try {
    const before = tables();
    const refused = await startSqliteWorkflowTimers(store, { handlers: [{}] as never }).then(
      async (timers) => {
        await timers.stop();
        return 'started';
      },
      (error: unknown) => error,
    );
    assert.deepEqual(tables(), before, 'nothing is written to the file');
    assert.ok(isValidationError(refused), `expected a ValidationError, got ${String(refused)}`);
    assert.deepEqual(
      refused.issues.map((issue) => issue.path),
      ['startSqliteWorkflowTimers.handlers[0]'],
    );
    assert.match(refused.message, /has no workflow\.name .* and no fireTimers or fireTimer function/);
  } finally {
    await store.close();
  }
});
