import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { defineProjection } from '@factline/core';
import { createProjectionRunner } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresProjectionBackend } from './postgres-projections.ts';

const skip = await postgresUnavailable();
const schemas: string[] = [];
after(async () => {
  for (const schema of schemas) await dropSchema(schema);
});

describe('postgres projections: rebuild requests while a version is built beside the live one', { skip }, () => {
  it('a request names the live version by default, never taken by the version built beside it; one naming version 2 is taken by version 2', async () => {
    const schema = testSchema('rebuild_requests');
    schemas.push(schema);
    const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
    const resets: number[] = [];
    const applied = new Map<number, number>();
    const version = (v: 1 | 2) =>
      defineProjection<pg.PoolClient>({
        name: 'p',
        version: v,
        handles: ['A'],
        reset: () => {
          resets.push(v);
          applied.set(v, 0);
        },
        handle: (events) => {
          applied.set(v, (applied.get(v) ?? 0) + events.length);
        },
      });
    // Version 2 is slow to build (each batch of one event waits 50 ms before its commit): it checks the controls
    // before each batch, where version 1, idle, checks them once a second.
    const backend = getPostgresProjectionBackend(store);
    const slowBackend: typeof backend = {
      ...backend,
      commit: async (batch) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return backend.commit(batch);
      },
    };
    const v1 = createProjectionRunner(backend, [version(1)], { idleCheckMs: 1000 });
    const v2 = createProjectionRunner(slowBackend, [version(2)], { idleCheckMs: 1000, batchSize: 1, maxBatchSize: 1 });
    try {
      for (let i = 1; i <= 200; i += 20) {
        await store.append(
          `s-${i}`,
          Array.from({ length: 20 }, () => ({ type: 'A', data: {} })),
        );
      }
      const head = await store.headPosition();
      await v1.start();
      await v1.waitFor('p', head);
      await v2.start();
      await waitUntil(() => v2.status('p').checkpoint > 0, 'version 2 building');
      await backend.requestRebuild?.('p');
      await waitUntil(async () => (await backend.loadControl?.('p'))?.rebuildRequestedAt === null, 'the request taken');
      await waitUntil(() => resets.length > 0, 'a reset');
      assert.deepEqual(resets, [1], 'the live version was the one reset');
      await v1.waitFor('p', head, { timeoutMs: 10_000 });
      assert.equal(applied.get(1), 200, 'every event applied again by the live version');
      assert.equal(v2.status('p').liveVersion, 1);

      // Asked of version 2 by name: version 2 resets, version 1 is left alone.
      await assert.rejects(backend.requestRebuild?.('p', 0) as Promise<number>, /version/);
      await backend.requestRebuild?.('p', 2);
      assert.equal((await backend.loadControl?.('p'))?.rebuildVersion, 2);
      await waitUntil(() => resets.length === 2, 'the request for version 2 taken');
      assert.deepEqual(resets, [1, 2]);
      await backend.requestRebuild?.('p');
      assert.equal((await backend.loadControl?.('p'))?.rebuildVersion, 1, 'the live version recorded');
      await waitUntil(() => resets.length === 3, 'the request for the live version taken');
      assert.deepEqual(resets, [1, 2, 1]);
    } finally {
      await v2.stop();
      await v1.stop();
      await backend.close();
      await store.close();
    }
  });
});
