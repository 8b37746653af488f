import assert from 'node:assert/strict';
import type { ProjectionConformanceCase } from './context.ts';
import { appendEvents, assertModel, counterProjection, countLog, eventually, lastPosition } from './counter.ts';

const noControls = 'the backend takes no requests from other processes (no loadControl, setPaused, requestRebuild)';

/** Pause, resume and rebuild asked through the database, as another process (`factline projections`) does. */
export const controlCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'a paused projection holds before its next batch, applying nothing; resumed, it goes on from its checkpoint',
    requires: (backend) => (backend.loadControl && backend.setPaused ? false : noControls),
    async run({ store, model, backend, createRunner, names }) {
      const n = names('pause');
      const seeded = await appendEvents(store, n, 10, { perAppend: 2 });
      const runner = createRunner([counterProjection(model, n)]);
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      await backend.setPaused?.(n.projection, true);
      await eventually(
        () => runner.status(n.projection).state === 'paused',
        () => `state ${runner.status(n.projection).state}`,
      );
      const held = runner.status(n.projection).checkpoint;
      const more = await appendEvents(store, n, 6, { perAppend: 3 });
      assert.equal(runner.status(n.projection).state, 'paused');
      assert.equal(runner.status(n.projection).checkpoint, held, 'applied while paused');
      assertModel(await model.read(n.projection), await countLog(store, n.type, (p) => p <= held), 'paused: ');

      await backend.setPaused?.(n.projection, false);
      await runner.waitFor(n.projection, lastPosition(more));
      assert.notEqual(runner.status(n.projection).state, 'paused');
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'resumed: ');
    },
  },
  {
    name: 'a rebuild requested through the database is taken once: the model is replayed from empty and the request cleared',
    requires: (backend) =>
      backend.loadControl && backend.requestRebuild && backend.clearRebuildRequest ? false : noControls,
    async run({ store, model, backend, createRunner, names }) {
      const n = names('requested-rebuild');
      const seeded = await appendEvents(store, n, 12, { perAppend: 3, streams: 3 });
      const runner = createRunner([counterProjection(model, n)], { batchSize: 5 });
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      const requestedAt = (await backend.requestRebuild?.(n.projection)) as number;
      await eventually(
        async () => (await backend.loadControl?.(n.projection))?.rebuildRequestedAt === null,
        () => 'the request taken',
      );
      await runner.waitFor(n.projection, lastPosition(seeded));
      const expected = await countLog(store, n.type);
      await eventually(
        async () => (await model.read(n.projection)).applied.length === expected.applied.length,
        () => `${expected.applied.length} applied after the reset`,
      );
      // Reset emptied the model: every event once in the replay, none twice.
      assertModel(await model.read(n.projection), expected, 'rebuilt: ');
      assert.equal(await backend.clearRebuildRequest?.(n.projection, requestedAt), false, 'cleared once');
    },
  },
];
