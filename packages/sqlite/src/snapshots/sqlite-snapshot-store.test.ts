import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { handleCommand, isStoreClosedError, isValidationError, type SnapshotErrorContext } from '@factline/core';
import { testSnapshotStoreConformance } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteEventStore, getSqliteSnapshotStore, openSqliteDatabase } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-snapshots-'));
const path = join(dir, 'snapshots.db');
after(() => rmSync(dir, { recursive: true, force: true }));

testSnapshotStoreConformance({
  name: 'sqlite (file, on the event store connection)',
  createEnvironment: () => {
    const events = getSqliteEventStore({ path });
    const peers: Database[] = [];
    return {
      events,
      snapshots: getSqliteSnapshotStore({ database: events.database }),
      // Another connection to the file, as another process has.
      peer: () => {
        const db = openSqliteDatabase(path);
        peers.push(db);
        return getSqliteSnapshotStore({ database: db });
      },
      close: async () => {
        for (const db of peers) db.close();
        await events.close();
      },
    };
  },
});

test('the table is created once per file, as component snapshots of factline_migrations', () => {
  const db = openSqliteDatabase(join(dir, 'migrations.db'));
  try {
    getSqliteSnapshotStore({ database: db });
    getSqliteSnapshotStore({ database: db });
    const rows = db.prepare("SELECT version FROM factline_migrations WHERE component = 'snapshots'").all();
    assert.deepEqual(rows, [{ version: 1 }]);
    const columns = db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').all('factline_snapshots');
    assert.deepEqual(
      columns.map((c) => (c as { name: string }).name),
      ['stream_id', 'name', 'version', 'last_event_id', 'snapshot_version', 'state', 'taken_at'],
    );
  } finally {
    db.close();
  }
});

test('snapshots survive the connection: a new one on the file loads them', async () => {
  const file = join(dir, 'reopen.db');
  const first = openSqliteDatabase(file);
  await getSqliteSnapshotStore({ database: first }).save({
    streamId: 'cart-1',
    version: 9,
    lastEventId: 'e9',
    snapshotVersion: 3,
    state: { items: ['tea'] },
  });
  first.close();
  const second = openSqliteDatabase(file);
  try {
    const loaded = await getSqliteSnapshotStore({ database: second }).load('cart-1');
    assert.deepEqual(loaded?.state, { items: ['tea'] });
    assert.equal(loaded?.snapshotVersion, 3);
  } finally {
    second.close();
  }
});

test('options are checked; a closed connection refuses with StoreClosedError, a pending save included', async () => {
  assert.throws(
    () => getSqliteSnapshotStore({ database: {} as Database }),
    (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'getSqliteSnapshotStore.database',
  );
  const db = openSqliteDatabase(join(dir, 'closed.db'));
  assert.throws(
    () => getSqliteSnapshotStore({ database: db, clock: Date.now } as never),
    (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'getSqliteSnapshotStore.clock',
  );
  const snapshots = getSqliteSnapshotStore({ database: db });
  const pending = snapshots.save({ streamId: 's-1', version: 1, lastEventId: 'e1', snapshotVersion: 1, state: {} });
  db.close();
  await assert.rejects(pending, isStoreClosedError);
  await assert.rejects(snapshots.load('s-1'), isStoreClosedError);
  await assert.rejects(snapshots.delete('s-1'), isStoreClosedError);
  await assert.rejects(
    snapshots.save({ streamId: 's-1', version: 1, lastEventId: 'e1', snapshotVersion: 1, state: {} }),
    isStoreClosedError,
  );
});

test('a command whose store closes before its snapshot is written still succeeds; onError hears why', async () => {
  const events = getSqliteEventStore({ path: join(dir, 'closing.db') });
  const errors: { error: unknown; context: SnapshotErrorContext }[] = [];
  const decider = {
    initialState: () => ({ n: 0 }),
    evolve: (state: { n: number }) => ({ n: state.n + 1 }),
    decide: () => [{ type: 'Counted', data: {} }],
  };
  const result = await handleCommand(events, 'count-1', {}, decider, {
    snapshots: {
      store: getSqliteSnapshotStore({ database: events.database }),
      version: 1,
      every: 1,
      onError: (error, context) => errors.push({ error, context }),
    },
  });
  await events.close();
  assert.equal(result.version, 1);
  assert.equal(await result.snapshotSaved, false);
  assert.equal(errors.length, 1);
  assert.ok(isStoreClosedError(errors[0]?.error));
  assert.equal(errors[0]?.context.operation, 'save');
});
