import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineProjection, isTimeoutError, isValidationError } from '@factline/core';
import type { Database } from 'better-sqlite3';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';
import { startSqliteProjections } from './sqlite-projections.ts';

test('stopping the runner during a rebuild rejects the rebuild instead of leaving it pending', async () => {
  const store = getSqliteEventStore({ path: ':memory:' });
  for (let i = 0; i < 50; i++) {
    await store.append(
      `s-${i}`,
      Array.from({ length: 20 }, () => ({ type: 'Counted', data: {} })),
    );
  }
  const counted = defineProjection<Database>({
    name: 'counted',
    handles: ['Counted'],
    init: (db) => {
      db.exec('CREATE TABLE IF NOT EXISTS counted (n INTEGER NOT NULL)');
    },
    reset: (db) => {
      db.exec('DELETE FROM counted');
    },
    handle: (events, db) => {
      db.prepare('INSERT INTO counted (n) VALUES (?)').run(events.length);
    },
  });
  const runner = await startSqliteProjections(store, [counted], { batchSize: 10 });
  await runner.waitFor('counted', await store.headPosition());
  // Stop from inside the rebuild, after its first batch: it is certainly still running then.
  let stopping: Promise<void> | undefined;
  const rebuilding = runner.rebuild('counted', {
    onProgress: () => {
      stopping ??= runner.stop();
    },
  });
  await assert.rejects(rebuilding, isTimeoutError);
  await stopping;
  assert.equal(runner.status('counted').state, 'stopped');
  await store.close();
});

test('a second rebuild while one runs is refused; waitFor on an unknown projection rejects (no throw)', async () => {
  const store = getSqliteEventStore({ path: ':memory:' });
  await store.append(
    's-1',
    Array.from({ length: 30 }, () => ({ type: 'Counted', data: {} })),
  );
  const counted = defineProjection<Database>({
    name: 'counted',
    handles: ['Counted'],
    handle: () => {},
  });
  const runner = await startSqliteProjections(store, [counted], { batchSize: 5 });
  const first = runner.rebuild('counted');
  await assert.rejects(runner.rebuild('counted'), isValidationError);
  await first;
  const waiting = runner.waitFor('nope', 1);
  assert.ok(waiting instanceof Promise);
  await assert.rejects(waiting, isValidationError);
  await runner.stop();
  await store.close();
});
