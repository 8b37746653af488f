import assert from 'node:assert/strict';
import type { RebuildProgress } from '../../projections/types.ts';
import type { AppendResult } from '../../store/types.ts';
import type { ProjectionConformanceCase } from './context.ts';
import { appendEvents, assertModel, counterProjection, countLog, lastPosition, untilRunning } from './counter.ts';

/** Rebuild: replaying into an empty model, with progress, while appends go on. */
export const rebuildCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'rebuild replays into an empty model, reports progress to 1, and includes appends made meanwhile',
    async run({ store, model, createRunner, names }) {
      const n = names('rebuild');
      await appendEvents(store, n, 10, { type: n.otherType, perAppend: 5 });
      const seeded = await appendEvents(store, n, 60, { perAppend: 4, streams: 4 });
      const runner = createRunner([counterProjection(model, n)], { batchSize: 7 });
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      const live = await model.read(n.projection);
      assertModel(live, await countLog(store, n.type), 'before the rebuild: ');

      const progress: RebuildProgress[] = [];
      const states = new Set<string>();
      const during: Promise<AppendResult>[] = [];
      const appendOne = (i: number) => store.append(`${n.category}-during`, [{ type: n.type, data: { i } }]);
      const rebuilt = runner.rebuild(n.projection, {
        onProgress(p) {
          progress.push(p);
          states.add(runner.status(n.projection).state);
          if (progress.length === 1) during.push(appendOne(1), appendOne(2));
        },
      });
      during.push(appendOne(0));
      await rebuilt;
      const appended = await Promise.all(during);
      await runner.waitFor(n.projection, lastPosition(appended));

      assert.ok(progress.length >= 2, `expected a progress report per batch, got ${progress.length}`);
      const last = progress[progress.length - 1] as RebuildProgress;
      assert.equal(last.fraction, 1, 'the last progress report is not at fraction 1');
      assert.ok(last.position >= last.target, 'the rebuild ended before its target');
      assert.ok(last.target >= lastPosition(seeded), 'the rebuild target is before the events it must replay');
      assert.ok(last.applied >= 60, `the rebuild reports ${last.applied} events applied, expected at least 60`);
      for (const [i, p] of progress.entries()) {
        assert.equal(p.projection, n.projection);
        assert.ok(p.fraction >= 0 && p.fraction <= 1, `fraction ${p.fraction} out of range`);
        if (i > 0) assert.ok(p.fraction >= (progress[i - 1] as RebuildProgress).fraction, 'fraction went back');
        assert.ok(Number.isFinite(p.rate) && p.rate >= 0 && Number.isFinite(p.etaSeconds) && p.etaSeconds >= 0);
      }
      assert.deepEqual([...states], ['rebuilding'], 'status during the rebuild');

      const rebuiltModel = await model.read(n.projection);
      assertModel(rebuiltModel, await countLog(store, n.type), 'after the rebuild: ');
      const liveEnd = Math.max(...live.applied);
      assert.deepEqual(
        rebuiltModel.applied.filter((p) => p <= liveEnd),
        live.applied,
        'the rebuilt model differs from the live one',
      );
      for (const result of appended) assert.ok(rebuiltModel.applied.includes(result.position));
      await untilRunning(runner, n.projection);
    },
  },
];
