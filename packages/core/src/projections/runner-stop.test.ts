import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { EventStore } from '../store/types.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from '../testing/projections/in-memory-backend.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { createProjectionRunner } from './runner.ts';
import type { Projection, ProjectionBackend } from './types.ts';

/** A projection counting `Counted` events into the table `counts`; its handler throws while `failing()`. */
function counting(name: string, failing: () => boolean = () => false): Projection<InMemoryProjectionTx> {
  return {
    name,
    handles: ['Counted'],
    reset(tx) {
      tx.table('counts').delete(name);
    },
    handle(events, tx) {
      if (failing()) throw new Error('handler bug');
      const counts = tx.table('counts');
      counts.set(name, ((counts.get(name) as number | undefined) ?? 0) + events.length);
    },
  };
}

/**
 * The store, counting the log reads made once `armed`; past 200 of them a read throws, which ends a
 * loop that reads again and again without yielding (it would starve the event loop, this test with it).
 */
function countingReads(store: EventStore, headPosition?: () => Promise<number>) {
  const reads = { armed: false, count: 0, store: undefined as unknown as EventStore };
  reads.store = new Proxy(store, {
    get(target, key) {
      if (key === 'headPosition' && headPosition) return headPosition;
      if (key === 'readAll') {
        return (...args: Parameters<EventStore['readAll']>) => {
          if (reads.armed && ++reads.count > 200) throw new Error('still reading the log after stop()');
          return target.readAll(...args);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as EventStore;
  return reads;
}

/** Stops `runner`, appends one event and gives a loop left running 200 ms to read it: the reads it made. */
async function readsAfterStop(
  runner: { stop(): Promise<void> },
  store: EventStore,
  reads: ReturnType<typeof countingReads>,
): Promise<number> {
  await runner.stop();
  reads.armed = true;
  await store.append('counter-1', [{ type: 'Counted', data: {} }]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  return reads.count;
}

const fast = { idleCheckMs: 10, initialBackoffMs: 1, maxBackoffMs: 5 };

describe('projection runner: stop() ends every loop', () => {
  it('after two resume() at once, a projection runs one loop, which stop() ends', async () => {
    const store = getInMemoryEventStore();
    const reads = countingReads(store);
    const backend = { ...getInMemoryProjectionBackend(store), store: reads.store };
    let fixed = false;
    const runner = createProjectionRunner(backend, [counting('p', () => !fixed)], { ...fast, maxAttempts: 1 });
    const { position } = await store.append('counter-1', [{ type: 'Counted', data: {} }]);
    await runner.start();
    await waitUntil(() => runner.status('p').state === 'failed', 'p failed');
    fixed = true;
    // An operator's resume and the leased runner's automatic one, at the same moment.
    await Promise.all([runner.resume('p'), runner.resume('p')]);
    await runner.waitFor('p', position);
    assert.equal(await readsAfterStop(runner, store, reads), 0, 'the log was read after stop() resolved');
    assert.equal(runner.status('p').state, 'stopped');
  });

  it('a stop and a start while a rebuild requested through the database reads its target leave one loop', async () => {
    const store = getInMemoryEventStore();
    const base = getInMemoryProjectionBackend(store);
    const control = { paused: false, rebuildRequestedAt: null as number | null };
    // The head read right after the request was cleared (the rebuild's target) waits for `release`.
    let holdNextHead = false;
    let held = false;
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const reads = countingReads(store, async () => {
      if (holdNextHead) {
        holdNextHead = false;
        held = true;
        await released;
      }
      return store.headPosition();
    });
    const backend: ProjectionBackend<InMemoryProjectionTx> = {
      ...base,
      store: reads.store,
      loadControl: async () => ({ ...control }),
      clearRebuildRequest: async (_projection, at) => {
        if (control.rebuildRequestedAt !== at) return false;
        control.rebuildRequestedAt = null;
        holdNextHead = true;
        return true;
      },
    };
    const runner = createProjectionRunner(backend, [counting('p')], fast);
    await store.append('counter-1', [{ type: 'Counted', data: {} }]);
    await runner.start();
    await runner.waitFor('p', 1);
    control.rebuildRequestedAt = Date.now();
    await waitUntil(() => held, 'the requested rebuild reading its target');
    // The leased runner losing and taking back its lease meanwhile.
    await runner.stop();
    await runner.start();
    release();
    const count = () => base.read('counts').get('p');
    await waitUntil(() => count() === 1 && runner.status('p').state === 'running', 'the replay after the restart');
    assert.equal(await readsAfterStop(runner, store, reads), 0, 'the log was read after stop() resolved');
    assert.equal(runner.status('p').state, 'stopped');
  });

  it('stop() during a failing batch ends its retry backoff at once', async () => {
    const store = getInMemoryEventStore();
    let errors = 0;
    const runner = createProjectionRunner(getInMemoryProjectionBackend(store), [counting('p', () => true)], {
      idleCheckMs: 10,
      initialBackoffMs: 60_000,
      maxBackoffMs: 60_000,
      random: () => 1,
      onError: () => {
        errors += 1;
      },
    });
    await store.append('counter-1', [{ type: 'Counted', data: {} }]);
    await runner.start();
    await waitUntil(() => errors >= 1, 'the first failure');
    await settlesWithin(runner.stop(), 2000, 'stop() during a 60 s backoff');
    assert.equal(errors, 1, 'no retry after the stop');
  });
});
