import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from '../testing/projections/in-memory-backend.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { createProjectionRunner } from './runner.ts';
import type { Projection } from './types.ts';

/** A projection counting `Counted` events into the table `counts`, with hooks for its reset and init. */
function counting(
  name: string,
  hooks: { reset?: () => void | Promise<void>; init?: () => void } = {},
): Projection<InMemoryProjectionTx> {
  return {
    name,
    handles: ['Counted'],
    init: () => hooks.init?.(),
    async reset(tx) {
      await hooks.reset?.();
      tx.table('counts').delete(name);
    },
    handle(events, tx) {
      const counts = tx.table('counts');
      counts.set(name, ((counts.get(name) as number | undefined) ?? 0) + events.length);
    },
  };
}

function setUp() {
  const store = getInMemoryEventStore();
  const backend = getInMemoryProjectionBackend(store);
  const append = async (n: number) => {
    let position = 0;
    for (let i = 0; i < n; i++)
      position = (await store.append('counter-1', [{ type: 'Counted', data: { i } }])).position;
    return position;
  };
  const count = (name: string) => (backend.read('counts').get(name) as number | undefined) ?? 0;
  return { store, backend, append, count };
}

const fast = { idleCheckMs: 20, initialBackoffMs: 1, maxBackoffMs: 5 };

describe('projection runner: rebuilds and starts that fail or are stopped', () => {
  it('a rebuild whose reset fails is told, and the projection goes on from its checkpoint', async () => {
    const { store, backend, append } = setUp();
    let failReset = true;
    const runner = createProjectionRunner(
      backend,
      [
        counting('p', {
          reset: () => {
            if (failReset) throw new Error('reset refused');
          },
        }),
      ],
      fast,
    );
    await runner.start();
    try {
      await runner.waitFor('p', await append(3));
      await assert.rejects(runner.rebuild('p'), /reset refused/);
      assert.match(runner.status('p').lastError?.message ?? '', /reset refused/, 'told on the status');
      // Before: the loop was never started again, silently; the append below was never applied.
      await runner.waitFor('p', await append(2), { timeoutMs: 3000 });
      assert.notEqual(runner.status('p').state, 'stopped');
      failReset = false;
      await runner.rebuild('p');
      assert.equal(runner.status('p').checkpoint, await store.headPosition());
    } finally {
      await runner.stop();
    }
  });

  it('stop() while a rebuild resets: stop() waits for the reset, the projection stays stopped and the rebuild rejects', async () => {
    const { backend, append, count } = setUp();
    let releaseReset = () => {};
    let resetting = false;
    const runner = createProjectionRunner(
      backend,
      [
        counting('p', {
          reset: () => {
            resetting = true;
            return new Promise<void>((resolve) => {
              releaseReset = resolve;
            });
          },
        }),
      ],
      fast,
    );
    await runner.start();
    await runner.waitFor('p', await append(3));
    const rebuild = runner.rebuild('p');
    await waitUntil(() => resetting, 'the rebuild resetting');
    let stopped = false;
    const stopping = runner.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(stopped, false, 'stop() waits for the reset in flight');
    releaseReset();
    await stopping;
    assert.equal(count('p'), 0, 'the reset committed before stop() resolved');
    await assert.rejects(rebuild, (error) => isTimeoutError(error) && /stopped before its rebuild/.test(String(error)));
    // Before: the rebuild started the loop again after stop() had resolved.
    assert.equal(runner.status('p').state, 'stopped');
    const before = count('p');
    const position = await append(2);
    await assert.rejects(runner.waitFor('p', position, { timeoutMs: 300 }));
    assert.equal(count('p'), before, 'nothing applied after stop()');
  });

  it('stop() at once after rebuild(): nothing is reset after stop() resolved', async () => {
    const { backend, append, count } = setUp();
    let resets = 0;
    const reset = () => {
      resets += 1;
    };
    const runner = createProjectionRunner(backend, [counting('p', { reset })], fast);
    await runner.start();
    await runner.waitFor('p', await append(3));
    const rebuild = runner.rebuild('p');
    await runner.stop();
    const atStop = { resets, count: count('p') };
    await assert.rejects(rebuild, (error) => isTimeoutError(error) && /stopped before its rebuild/.test(String(error)));
    assert.deepEqual({ resets, count: count('p') }, atStop, 'the model as stop() left it');
    assert.equal(runner.status('p').state, 'stopped');
  });

  it('a start that fails part-way leaves nothing running', async () => {
    const { backend, append, count } = setUp();
    const runner = createProjectionRunner(
      backend,
      [
        counting('a'),
        counting('b', {
          init: () => {
            throw new Error('b cannot start');
          },
        }),
      ],
      fast,
    );
    await assert.rejects(runner.start(), /b cannot start/);
    // Before: 'a' kept running with no runner handed to the caller to stop it.
    assert.equal(runner.status('a').state, 'stopped');
    const position = await append(2);
    await assert.rejects(runner.waitFor('a', position, { timeoutMs: 300 }));
    assert.equal(count('a'), 0);
  });
});

describe('projection runner: a stop while start() awaits', () => {
  it('ends the start: no projection starts after the stop resolved', async () => {
    const { backend, append, count } = setUp();
    let initStarted = false;
    let finishInit: () => void = () => undefined;
    const runner = createProjectionRunner(
      backend,
      [
        counting('a'),
        counting('b', {
          // An init that takes long (a lease connection waiting, a large table's index).
          init: () => {
            initStarted = true;
            return new Promise<void>((resolve) => {
              finishInit = resolve;
            }) as never;
          },
        }),
      ],
      fast,
    );
    const starting = runner.start();
    await waitUntil(() => initStarted, "b's init");
    await runner.stop();
    finishInit();
    await starting;
    assert.equal(runner.status('a').state, 'stopped');
    assert.equal(runner.status('b').state, 'stopped');
    const position = await append(2);
    await assert.rejects(runner.waitFor('b', position, { timeoutMs: 300 }));
    assert.equal(count('a'), 0);
    assert.equal(count('b'), 0, 'b started after the stop resolved');
  });
});

describe('projection runner: a rebuild whose reset another runner keeps refusing', () => {
  it('rejects and resets nothing, instead of reporting the rebuild done', async () => {
    const { store, backend, append, count } = setUp();
    const runner = createProjectionRunner(backend, [counting('p')], fast);
    await runner.start();
    try {
      await runner.waitFor('p', await append(3));
      // Every commit that would move the checkpoint back to 0 is refused, as when another runner keeps moving it.
      const commit = backend.commit.bind(backend);
      backend.commit = async (request) => (request.checkpoint === 0 ? false : commit(request));
      await assert.rejects(runner.rebuild('p'), /moved twice while its rebuild reset it/);
      assert.equal(count('p'), 3, 'nothing reset');
      backend.commit = commit;
      await runner.waitFor('p', await append(1));
      assert.equal(runner.status('p').checkpoint, await store.headPosition());
    } finally {
      await runner.stop();
    }
  });
});
