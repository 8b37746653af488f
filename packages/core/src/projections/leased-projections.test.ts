import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError, StorageError } from '../errors/index.ts';
import { createInMemoryLeases } from '../lease/in-memory.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from '../testing/projections/in-memory-backend.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { createLeasedProjections } from './leased-projections.ts';
import type { Projection, ProjectionBackend } from './types.ts';

const counting: Projection<InMemoryProjectionTx> = { name: 'p', handles: ['Counted'], handle: () => undefined };

describe('leased projections: a process standing by', () => {
  it('refuses resume() as it refuses rebuild(), and reports a failed read of its stand-by view to onError', async () => {
    const store = getInMemoryEventStore();
    const base = getInMemoryProjectionBackend(store);
    const table = new Map();
    let failReads = false;
    const outage = new StorageError('connection refused', { retryable: true });
    const standbyBackend: ProjectionBackend<InMemoryProjectionTx> = {
      ...base,
      loadCheckpoint: async (name) => {
        if (failReads) throw outage;
        return base.loadCheckpoint(name);
      },
    };
    const errors: { projection: string; error: unknown }[] = [];
    const logged: unknown[] = [];
    const options = { checkMs: 10, headPosition: () => store.headPosition(), projections: [counting] };
    const holder = createLeasedProjections({
      ...options,
      backend: base,
      leases: createInMemoryLeases(table),
      options: { idleCheckMs: 10 },
    });
    const standby = createLeasedProjections({
      ...options,
      backend: standbyBackend,
      leases: createInMemoryLeases(table),
      options: {
        idleCheckMs: 10,
        onError: (projection, error) => errors.push({ projection, error }),
        logger: {
          debug: () => undefined,
          info: () => undefined,
          warn: (record) => logged.push(record),
          error: () => undefined,
        },
      },
    });
    await holder.start();
    await standby.start();
    try {
      assert.equal(standby.status('p').lease, 'standby');
      await assert.rejects(standby.rebuild('p'), isValidationError);
      await assert.rejects(standby.resume('p'), (error: unknown) => {
        assert.ok(isValidationError(error), String(error));
        assert.match(error.message, /stands by/);
        return true;
      });
      failReads = true;
      await waitUntil(() => errors.length > 0, 'the failed stand-by read told to onError', 5000);
      assert.deepEqual(errors[0], { projection: 'p', error: outage });
      assert.ok(
        logged.some((record) => (record as { stage?: string }).stage === 'standby'),
        'logged with its stage',
      );
    } finally {
      await standby.stop();
      await holder.stop();
    }
  });
});
