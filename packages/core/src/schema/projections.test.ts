import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProjectionFailedError } from '../errors/index.ts';
import { createProjectionRunner } from '../projections/runner.ts';
import type { Projection } from '../projections/types.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { RecordedEvent } from '../store/types.ts';
import { rejectsWithCode } from '../testing/conformance/context.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from '../testing/projections/in-memory-backend.ts';
import { suiteSchemas } from '../testing/schema-store/fixtures.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { withSchemas } from './schema-store.ts';

const v1 = { orderId: 'o-1', total: 30 };
const v3 = { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } };
const noSleep = async () => {};

/** A projection keeping every event it is given (type, schemaVersion, data) in table `seen`, by position. */
const recorder = (
  name: string,
  extra: Partial<Projection<InMemoryProjectionTx>> = {},
): Projection<InMemoryProjectionTx> => ({
  name,
  handles: ['OrderPlaced', 'Garbled'],
  reset: (tx) => tx.table(name).clear(),
  handle(events: readonly RecordedEvent[], tx) {
    for (const e of events) tx.table(name).set(String(e.position), [e.type, e.schemaVersion, e.data]);
  },
  ...extra,
});

/** A raw store (no registry), the typed one on it, a backend and a runner factory over the typed one. */
function setUp() {
  const raw = getInMemoryEventStore();
  const store = withSchemas(raw, suiteSchemas());
  const backend = getInMemoryProjectionBackend(store);
  const runner = (projections: Projection<InMemoryProjectionTx>[]) =>
    createProjectionRunner(backend, projections, { idleCheckMs: 5, sleep: noSleep, maxAttempts: 2 });
  return { raw, store, backend, runner };
}

describe('projections read upcast events', () => {
  it('catch-up, live events, a rebuild and a side-by-side version all see v3', async () => {
    const { raw, store, backend, runner } = setUp();
    await raw.append('order-1', [{ type: 'OrderPlaced', data: v1 }]);
    const first = runner([recorder('seen')]);
    await first.start();
    try {
      await first.waitFor('seen', 1);
      assert.deepEqual(backend.read('seen').get('1'), ['OrderPlaced', 3, v3], 'catch-up');
      const { position } = await raw.append('order-2', [{ type: 'OrderPlaced', data: { ...v1, orderId: 'o-2' } }]);
      await first.waitFor('seen', position);
      assert.equal((backend.read('seen').get(String(position)) as unknown[])[1], 3, 'live');
      const stamped = await store.append('order-3', [{ type: 'OrderPlaced', data: v3 }]);
      await first.waitFor('seen', stamped.position);
      await first.rebuild('seen');
      assert.deepEqual(backend.read('seen').get('1'), ['OrderPlaced', 3, v3], 'rebuild');
    } finally {
      await first.stop();
    }
    const next = runner([
      recorder('seen', { version: 2, reset: undefined, name: 'seen', handle: recorder('seen_v2').handle }),
    ]);
    await next.start();
    try {
      await next.waitFor('seen', await store.headPosition());
      assert.deepEqual(backend.read('seen_v2').get('1'), ['OrderPlaced', 3, v3], 'side-by-side version');
      await waitUntil(async () => (await next.liveVersion('seen')) === 2, 'version 2 going live');
    } finally {
      await next.stop();
    }
  });

  it("an event that fails to upcast is parked as stored (onFailure: 'park'), once, and the others are applied", async () => {
    const { raw, backend } = setUp();
    await raw.append('order-1', [
      { type: 'OrderPlaced', data: v1 },
      { type: 'Garbled', data: { text: 'x' } },
      { type: 'OrderPlaced', data: v1 },
    ]);
    const errors: { position: number; code: unknown }[] = [];
    const run = createProjectionRunner(backend, [recorder('parks', { onFailure: 'park' })], {
      idleCheckMs: 5,
      sleep: noSleep,
      onError: (_, error, position) => errors.push({ position, code: (error as { code?: unknown }).code }),
    });
    await run.start();
    try {
      await run.waitFor('parks', 3);
      assert.deepEqual([...backend.read('parks').keys()], ['1', '3']);
      const parked = await run.parked('parks');
      assert.equal(parked.length, 1);
      assert.equal(parked[0]?.event.position, 2);
      assert.deepEqual(parked[0]?.event.data, { text: 'x' }, 'parked as stored');
      assert.match(
        parked[0]?.error ?? '',
        /Upcasting event 'Garbled' from version 1 to 2 failed: cannot read version 1/,
      );
      // Not retried: one report while the batch failed, one once isolated.
      assert.deepEqual(errors, [
        { position: 2, code: 'UPCAST' },
        { position: 2, code: 'UPCAST' },
      ]);
    } finally {
      await run.stop();
    }
  });

  it("an event that fails to upcast stops a projection ('stop') at its position; the runner keeps running the others", async () => {
    const { raw, runner } = setUp();
    await raw.append('order-1', [
      { type: 'OrderPlaced', data: v1 },
      { type: 'Garbled', data: { text: 'x' } },
    ]);
    const run = runner([recorder('stops'), recorder('others', { handles: ['OrderPlaced'] })]);
    const failed = run.waitFor('stops', 2);
    failed.catch(() => {});
    await run.start();
    try {
      const error = await rejectsWithCode<ProjectionFailedError>(failed, 'PROJECTION_FAILED');
      assert.equal(error.position, 2);
      assert.equal((error.cause as { code?: unknown }).code, 'UPCAST');
      assert.equal(run.status('stops').state, 'failed');
      assert.equal(run.status('stops').checkpoint, 1);
      await raw.append('order-2', [{ type: 'OrderPlaced', data: v1 }]);
      await run.waitFor('others', 3);
      assert.equal(run.status('others').state, 'running');
    } finally {
      await run.stop();
    }
  });
});
