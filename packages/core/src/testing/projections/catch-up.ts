import assert from 'node:assert/strict';
import type { AppendResult } from '../../store/types.ts';
import type { ProjectionConformanceCase } from './context.ts';
import { appendEvents, assertModel, counterProjection, countLog, lastPosition } from './counter.ts';

/** Catch-up and live: every handled event applied once, in order, with batches that grow while catching up. */
export const catchUpCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'catch-up then live: every handled event applied once, in order, with no gap',
    async run({ store, model, createRunner, names }) {
      const n = names('live');
      const before = await appendEvents(store, n, 30, { perAppend: 3 });
      await appendEvents(store, n, 10, { type: n.otherType, perAppend: 2 });
      const runner = createRunner([counterProjection(model, n)], { batchSize: 4 });
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(before));
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'after catch-up: ');

      const live: AppendResult[] = [];
      for (let i = 0; i < 5; i++) live.push(...(await appendEvents(store, n, 3, { perAppend: 1 })));
      // A burst of concurrent appends on several streams.
      live.push(
        ...(await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            store.append(`${n.category}-${i % 4}`, [{ type: i % 3 === 0 ? n.otherType : n.type, data: { i } }]),
          ),
        )),
      );
      await runner.waitFor(n.projection, lastPosition(live));
      const expected = await countLog(store, n.type);
      assert.equal(expected.applied.length, 30 + 15 + 8);
      assertModel(await model.read(n.projection), expected, 'after live appends: ');
    },
  },
  {
    name: 'concurrent writers during catch-up: the model equals a fresh count of the log',
    async run({ store, model, createRunner, names }) {
      const n = names('writers');
      let handled = 0;
      const seeds = await Promise.all(
        Array.from({ length: 20 }, (_, a) => {
          const events = Array.from({ length: 10 }, (_, i) => ({
            type: i % 4 === 3 ? n.otherType : n.type,
            data: { a, i },
          }));
          handled += events.filter((e) => e.type === n.type).length;
          return store.append(`${n.category}-seed${a % 5}`, events);
        }),
      );
      const runner = createRunner([counterProjection(model, n)], { batchSize: 8 });
      const writers = Array.from({ length: 4 }, async (_, w) => {
        const results: AppendResult[] = [];
        for (let i = 0; i < 25; i++) {
          const events = Array.from({ length: 1 + (i % 3) }, (_, j) => ({
            type: (i + j) % 5 === 4 ? n.otherType : n.type,
            data: { w, i, j },
          }));
          handled += events.filter((e) => e.type === n.type).length;
          results.push(await store.append(`${n.category}-w${w}x${i % 3}`, events));
        }
        return results;
      });
      const started = runner.start();
      const written = (await Promise.all(writers)).flat();
      await started;
      await runner.waitFor(n.projection, Math.max(lastPosition(seeds), lastPosition(written)), { timeoutMs: 10_000 });
      const expected = await countLog(store, n.type);
      assert.equal(expected.applied.length, handled, 'the log does not hold what the writers appended');
      assertModel(await model.read(n.projection), expected);
    },
  },
  {
    name: 'catch-up batches double up to maxBatchSize; once live they start from batchSize again',
    async run({ store, model, createRunner, names }) {
      const n = names('grow');
      const seeded = await appendEvents(store, n, 30, { perAppend: 10 });
      const sizes: number[] = [];
      const runner = createRunner(
        [counterProjection(model, n, { onBatch: (events) => void sizes.push(events.length) })],
        { batchSize: 2, maxBatchSize: 8 },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      assert.deepEqual(sizes, [2, 4, 8, 8, 8], 'catch-up batch sizes');
      sizes.length = 0;
      const [live] = await appendEvents(store, n, 3, { perAppend: 3 });
      await runner.waitFor(n.projection, (live as AppendResult).position);
      assert.deepEqual(sizes, [2, 1], 'live batch sizes');
      assertModel(await model.read(n.projection), await countLog(store, n.type));
      await runner.stop();
    },
  },
];
