import assert from 'node:assert/strict';
import type { ProjectionRunner } from '../../projections/runner.ts';
import type { ProjectionConformanceCase } from './context.ts';
import { appendEvents, assertModel, counterProjection, countLog, eventually, lastPosition } from './counter.ts';

/** Stop and start again: the batch in flight commits; a new runner resumes from the checkpoint. */
export const lifecycleCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'stop lets the batch in flight commit; a new runner resumes from the checkpoint, re-applying nothing',
    async run({ store, model, backend, createRunner, names }) {
      const n = names('stop');
      const seeded = await appendEvents(store, n, 100, { perAppend: 5, streams: 4 });
      const positions = (await countLog(store, n.type)).applied;
      let batches = 0;
      let stopping: Promise<void> | undefined;
      const first: ProjectionRunner = createRunner(
        [
          counterProjection(model, n, {
            onBatch: () => {
              batches += 1;
              // Stop while the third batch is in flight: it must still commit.
              if (batches === 3) stopping = first.stop();
            },
          }),
        ],
        { batchSize: 10, maxBatchSize: 10 },
      );
      const waiting = first.waitFor(n.projection, lastPosition(seeded), { timeoutMs: 10_000 });
      waiting.catch(() => {});
      await first.start();
      await eventually(
        () => stopping !== undefined,
        () => 'the third batch',
      );
      await stopping;
      assert.equal(batches, 3, 'the runner took batches after stop was called');
      const status = first.status(n.projection);
      assert.equal(status.state, 'stopped');
      assert.equal(status.checkpoint, positions[29], 'the batch in flight did not commit');
      assert.equal(await backend.loadCheckpoint(n.projection), positions[29]);
      assertModel(
        await model.read(n.projection),
        await countLog(store, n.type, (p) => p <= (positions[29] as number)),
        'after stop: ',
      );

      const more = await appendEvents(store, n, 20, { perAppend: 2 });
      const second = createRunner([counterProjection(model, n)], { batchSize: 10 });
      await second.start();
      await second.waitFor(n.projection, lastPosition(more));
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'after the second runner: ');
    },
  },
];
