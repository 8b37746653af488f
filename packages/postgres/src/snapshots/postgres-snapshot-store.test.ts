import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStoreClosedError, isValidationError } from '@factline/core';
import { testSnapshotStoreConformance } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresSnapshotStore, type PostgresSnapshotStore } from './postgres-snapshot-store.ts';

const skip = await postgresUnavailable();
const schema = testSchema('snapshots');

testSnapshotStoreConformance({
  name: 'postgres (on the event store pool)',
  skip,
  async createEnvironment() {
    const events = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
    const peers: PostgresSnapshotStore[] = [];
    return {
      events,
      snapshots: await getPostgresSnapshotStore({ pool: events.pool, schema }),
      // A pool of its own, as another process has.
      peer: async () => {
        const peer = await getPostgresSnapshotStore({ connectionString: postgresUrl, schema, poolSize: 2 });
        peers.push(peer);
        return peer;
      },
      close: async () => {
        for (const peer of peers) await peer.close();
        await events.close();
      },
    };
  },
  teardown: () => (skip ? undefined : dropSchema(schema)),
});

test('the table lives in the configured schema, migrated once as component snapshots', { skip }, async () => {
  const own = testSchema('snapshots_mig');
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  try {
    await Promise.all([
      getPostgresSnapshotStore({ pool, schema: own }),
      getPostgresSnapshotStore({ pool, schema: own }),
    ]);
    const { rows } = await pool.query(`SELECT version FROM "${own}".migrations WHERE component = 'snapshots'`);
    assert.deepEqual(rows, [{ version: 1 }]);
    const table = await pool.query(`SELECT to_regclass('"${own}".snapshots')::text AS name`);
    assert.equal(table.rows[0]?.name, `${own}.snapshots`);
  } finally {
    await pool.end();
    await dropSchema(own);
  }
});

test('options are checked; after close every call throws StoreClosedError and an own pool is ended', {
  skip,
}, async () => {
  await assert.rejects(
    getPostgresSnapshotStore({ connectionString: postgresUrl, schema, poolSzie: 2 } as never),
    (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'getPostgresSnapshotStore.poolSzie',
  );
  await assert.rejects(
    getPostgresSnapshotStore({ connectionString: postgresUrl, schema: 'Bad-Schema' }),
    (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'schema',
  );
  const store = await getPostgresSnapshotStore({ connectionString: postgresUrl, schema, poolSize: 1 });
  await store.save({ streamId: 'closing-1', version: 1, lastEventId: 'e1', snapshotVersion: 1, state: [1] });
  await store.close();
  await store.close();
  assert.equal(store.pool.ended, true);
  await assert.rejects(store.load('closing-1'), isStoreClosedError);
  await assert.rejects(store.delete('closing-1'), isStoreClosedError);
  await assert.rejects(
    store.save({ streamId: 'closing-1', version: 2, lastEventId: 'e2', snapshotVersion: 1, state: [] }),
    isStoreClosedError,
  );
});

test('saves racing on two pools leave the highest version', { skip }, async () => {
  const [a, b] = await Promise.all([
    getPostgresSnapshotStore({ connectionString: postgresUrl, schema, poolSize: 4 }),
    getPostgresSnapshotStore({ connectionString: postgresUrl, schema, poolSize: 4 }),
  ]);
  try {
    const id = `race-${process.pid}`;
    const saves = Array.from({ length: 40 }, (_, i) => {
      const version = ((i * 17) % 40) + 1;
      return (i % 2 ? a : b).save({
        streamId: id,
        version,
        lastEventId: `e${version}`,
        snapshotVersion: 1,
        state: { version },
      });
    });
    await Promise.all(saves);
    const loaded = await a.load(id);
    assert.equal(loaded?.version, 40);
    assert.deepEqual(loaded?.state, { version: 40 });
    assert.equal(loaded?.lastEventId, 'e40');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
