import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defineProjection } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteEventStore, getSqliteProjectionBackend, startSqliteProjections } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-rebuild-requests-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `requests-${++files}.db`);

/** Holds the event loop for `ms`: a version that is slow to build, as a real one with heavy writes is. */
const busy = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {}
};

/**
 * Version 1 live and caught up, version 2 being built beside it one slow event at a time (checking the
 * controls before every batch, where version 1, idle, checks them once a second). `ask` makes the request;
 * resolves with the versions that reset, once the request was taken.
 */
async function requestWhileBuildingV2(
  ask: (
    backend: ReturnType<typeof getSqliteProjectionBackend>,
    store: ReturnType<typeof getSqliteEventStore>,
  ) => Promise<unknown>,
): Promise<{ resets: number[]; v1Rebuilt: boolean }> {
  const store = getSqliteEventStore({ path: file() });
  for (let i = 1; i <= 200; i++) await store.append(`s-${i}`, [{ type: 'A', data: {} }]);
  const head = await store.headPosition();
  const resets: number[] = [];
  const version = (v: 1 | 2) =>
    defineProjection<Database>({
      name: 'p',
      version: v,
      handles: ['A'],
      init: (db) => {
        db.exec(`CREATE TABLE IF NOT EXISTS rows_v${v} (n INTEGER NOT NULL)`);
      },
      reset: (db) => {
        resets.push(v);
        db.exec(`DELETE FROM rows_v${v}`);
      },
      handle: (events, db) => {
        if (v === 2) busy(20 * events.length);
        for (const _ of events) db.prepare(`INSERT INTO rows_v${v} (n) VALUES (1)`).run();
      },
    });
  const v1 = await startSqliteProjections(store, [version(1)], { idleCheckMs: 1000, lease: false });
  const v2 = await startSqliteProjections(store, [version(2)], { idleCheckMs: 1000, lease: false, batchSize: 1 });
  const backend = getSqliteProjectionBackend(store);
  try {
    await v1.waitFor('p', head);
    await waitUntil(() => v2.status('p').checkpoint > 0, 'version 2 building');
    await ask(backend, store);
    await waitUntil(
      async () => (await backend.loadControl?.('p'))?.rebuildRequestedAt === null,
      'the request taken',
      10_000,
    );
    await waitUntil(() => resets.length > 0, 'a reset', 5000);
    let v1Rebuilt = false;
    if (resets.includes(1)) {
      await v1.waitFor('p', head, { timeoutMs: 10_000 });
      const rows = store.database.prepare('SELECT count(*) AS c FROM rows_v1').get() as { c: number };
      v1Rebuilt = rows.c === 200;
    }
    return { resets, v1Rebuilt };
  } finally {
    await v2.stop();
    await v1.stop();
    await store.close();
  }
}

describe('sqlite projections: rebuild requests name a version', () => {
  it('a request names the live version by default: the version built beside it never takes it', async () => {
    const outcome = await requestWhileBuildingV2(async (backend) => {
      await backend.requestRebuild?.('p');
      assert.equal((await backend.loadControl?.('p'))?.rebuildVersion, 1, 'the live version recorded');
    });
    assert.deepEqual(outcome, { resets: [1], v1Rebuilt: true });
  });

  it('a request naming version 2 is taken by the runner of version 2 only', async () => {
    const outcome = await requestWhileBuildingV2((backend) => backend.requestRebuild?.('p', 2) as Promise<number>);
    assert.deepEqual(outcome, { resets: [2], v1Rebuilt: false });
  });

  it('a request written before requests named a version (none recorded) is taken by the live one', async () => {
    const outcome = await requestWhileBuildingV2(async (_backend, store) => {
      const at = Date.now();
      store.database
        .prepare(
          `INSERT INTO factline_projection_controls (name, paused, rebuild_requested_at, changed_at) VALUES ('p', 0, ?, ?)
           ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at`,
        )
        .run(at, at);
    });
    assert.deepEqual(outcome, { resets: [1], v1Rebuilt: true });
  });

  it('a version not above 0 is refused before anything is written', async () => {
    const store = getSqliteEventStore({ path: file() });
    try {
      const backend = getSqliteProjectionBackend(store);
      await assert.rejects(backend.requestRebuild?.('p', 0) as Promise<number>, /version/);
      assert.equal((await backend.loadControl?.('p'))?.rebuildRequestedAt, null);
    } finally {
      await store.close();
    }
  });
});
