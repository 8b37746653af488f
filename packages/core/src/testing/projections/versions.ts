import assert from 'node:assert/strict';
import type { ProjectionSupersededError } from '../../errors/index.ts';
import type { ProjectionRunner } from '../../projections/runner.ts';
import type { ProjectionStatus } from '../../projections/types.ts';
import type { AppendResult } from '../../store/types.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import type { CounterSnapshot, ProjectionConformanceCase } from './context.ts';
import {
  appendEvents,
  assertModel,
  counterProjection,
  countLog,
  describeStatus,
  eventually,
  lastPosition,
  untilRunning,
} from './counter.ts';

/** Versions: a side-by-side rebuild of v2 next to the live v1, the switch, and v1 refused after. */
export const versionCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'side-by-side rebuild: v2 builds from 0 next to the live v1 while appends go on, goes live once caught up; v1 is refused after',
    async run({ store, model, backend, createRunner, names }) {
      const n = names('versions');
      const v2Model = `${n.projection}.v2`;
      const v2Types = [n.type, n.otherType];
      const seeded = await appendEvents(store, n, 60, { perAppend: 4, streams: 4 });
      await appendEvents(store, n, 10, { type: n.otherType, perAppend: 2 });

      // v1, built and live.
      const v1 = createRunner([counterProjection(model, n)], { batchSize: 5 });
      await v1.start();
      await v1.waitFor(n.projection, lastPosition(seeded));
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'v1 before v2: ');
      assert.equal(await v1.liveVersion(n.projection), 1);
      assert.equal(await backend.loadLiveVersion?.(n.projection), 1);
      assert.equal(v1.status(n.projection).version, 1);
      assert.equal(v1.status(n.projection).liveVersion, 1);

      // v2: another model (of both event types), from the first event, while v1 serves and appends go on.
      const switches: [string, number, number][] = [];
      const retired: number[] = [];
      let during: ProjectionStatus | undefined;
      let v1DuringBuild: Promise<CounterSnapshot> | undefined;
      let liveDuringBuild: Promise<number | undefined> | undefined;
      const v2Definition = (onBatch?: () => void) =>
        counterProjection(model, n, {
          version: 2,
          model: v2Model,
          handles: v2Types,
          retire: (previous) => void retired.push(previous),
          ...(onBatch ? { onBatch } : {}),
        });
      const v2: ProjectionRunner = createRunner(
        [
          v2Definition(() => {
            if (during) return;
            during = v2.status(n.projection);
            v1DuringBuild = model.read(n.projection);
            liveDuringBuild = backend.loadLiveVersion?.(n.projection);
          }),
        ],
        { batchSize: 2, maxBatchSize: 2, onSwitch: (name, from, to) => void switches.push([name, from, to]) },
      );
      await v2.start();
      assert.equal(v2.status(n.projection).state, 'catching-up');
      assert.equal(v2.status(n.projection).version, 2);
      assert.equal(v2.status(n.projection).liveVersion, 1);

      const liveSeen: number[] = [];
      const written: AppendResult[] = [];
      for (let i = 0; i < 10; i++) {
        written.push(...(await appendEvents(store, n, 2, { streams: 2 })));
        if (i % 3 === 0) written.push(await store.append(`${n.category}-x`, [{ type: n.otherType, data: { i } }]));
        liveSeen.push(await v1.liveVersion(n.projection));
        if (switches.length > 0) continue;
        // Before the switch v1 keeps its own model live and whole (after it, v1 may already be refused).
        try {
          await v1.waitFor(n.projection, lastPosition(written));
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'PROJECTION_SUPERSEDED', String(error));
          continue;
        }
        assertModel(await model.read(n.projection), await countLog(store, n.type), `v1 during the build (${i}): `);
      }

      // Its first batch ran while it was catching up, v1 still live and its model readable.
      assert.ok(during, 'v2 never ran a batch');
      assert.equal(during.state, 'catching-up');
      assert.equal(during.version, 2);
      assert.equal(during.liveVersion, 1);
      assert.ok(during.checkpoint < (seeded[0] as AppendResult).position, 'v2 did not start from the first event');
      assert.equal(await liveDuringBuild, 1, 'the live version while v2 was catching up');
      const readDuring = await (v1DuringBuild as Promise<CounterSnapshot>);
      const readUpTo = Math.max(...readDuring.applied);
      assert.ok(readUpTo >= lastPosition(seeded), 'v1 lost events while v2 was building');
      // (Read while v1 commits: its counters and positions may come from different moments.)
      assert.deepEqual(
        readDuring.applied,
        (await countLog(store, n.type, (p) => p <= readUpTo)).applied,
        'v1 read during the build: not every event up to a point, once, in order',
      );

      // The switch: once v2 caught up, exactly once, from 1 to 2.
      await eventually(
        () => v2.status(n.projection).liveVersion === 2 && v2.status(n.projection).state === 'running',
        () => `v2 to go live (${describeStatus(v2.status(n.projection))})`,
      );
      assert.deepEqual(switches, [[n.projection, 1, 2]]);
      // Retirement runs after the switch is recorded: it may still be under way here.
      await eventually(
        () => retired.length > 0,
        () => 'v1 to be retired',
      );
      assert.deepEqual(retired, [1], 'retire called once, with the version before');
      assert.equal(await v2.liveVersion(n.projection), 2);
      assert.equal(await backend.loadLiveVersion?.(n.projection), 2);
      liveSeen.push(await v1.liveVersion(n.projection));
      assert.deepEqual(
        liveSeen,
        [...liveSeen].sort((a, b) => a - b),
        `the live version went back: ${liveSeen.join(', ')}`,
      );
      assert.ok(
        liveSeen.every((v) => v === 1 || v === 2),
        `unexpected live versions: ${liveSeen.join(', ')}`,
      );
      assert.equal(liveSeen.at(-1), 2);

      // v2's model equals a fresh build from the log, and it goes on live.
      await v2.waitFor(n.projection, lastPosition(written));
      assertModel(await model.read(v2Model), await countLog(store, v2Types), 'v2 after the switch: ');
      const afterSwitch = await store.append(`${n.category}-0`, [{ type: n.type, data: {} }]);
      await v2.waitFor(n.projection, afterSwitch.position);
      assertModel(await model.read(v2Model), await countLog(store, v2Types), 'v2 live after the switch: ');
      assert.equal(v2.status(n.projection).state, 'running');

      // The running v1 notices (at its next batch or idle check) and stops, its model left as it was.
      await eventually(
        () => v1.status(n.projection).state === 'stopped' && v1.status(n.projection).liveVersion === 2,
        () => `v1 to stop as superseded (${describeStatus(v1.status(n.projection))})`,
      );
      const v1Status = v1.status(n.projection);
      assert.match(v1Status.lastError?.message ?? '', /superseded/);
      const v1Final = await model.read(n.projection);
      assertModel(v1Final, await countLog(store, n.type, (p) => p <= v1Status.checkpoint), 'v1 when it stopped: ');
      assert.ok(!v1Final.applied.includes(afterSwitch.position), 'v1 applied an event after it was superseded');
      assert.equal(await backend.loadCheckpoint(n.projection), v1Status.checkpoint);
      await rejectsWithCode<ProjectionSupersededError>(
        v1.waitFor(n.projection, afterSwitch.position),
        'PROJECTION_SUPERSEDED',
      );

      // A runner started afterwards with v1 refuses to run it: visible status, nothing written.
      const late = createRunner([counterProjection(model, n)]);
      await late.start();
      const refused = late.status(n.projection);
      assert.equal(refused.state, 'stopped');
      assert.equal(refused.version, 1);
      assert.equal(refused.liveVersion, 2);
      assert.match(refused.lastError?.message ?? '', /superseded/);
      const superseded = await rejectsWithCode<ProjectionSupersededError>(
        late.waitFor(n.projection, 1),
        'PROJECTION_SUPERSEDED',
      );
      assert.equal(superseded.version, 1);
      assert.equal(superseded.liveVersion, 2);
      await rejectsWithCode(late.rebuild(n.projection), 'PROJECTION_SUPERSEDED');
      assert.equal(late.status(n.projection).state, 'stopped');
      assert.deepEqual(await model.read(n.projection), v1Final);
      assert.equal(await backend.loadCheckpoint(n.projection), v1Status.checkpoint);

      // v2 started again: already live, it runs without a second switch.
      await v2.stop();
      const again = createRunner([v2Definition()], {
        onSwitch: (name, from, to) => void switches.push([name, from, to]),
      });
      await again.start();
      const more = await appendEvents(store, n, 3);
      await again.waitFor(n.projection, lastPosition(more));
      await untilRunning(again, n.projection);
      assert.equal(again.status(n.projection).liveVersion, 2);
      assert.deepEqual(switches, [[n.projection, 1, 2]], 'switched again');
      assertModel(await model.read(v2Model), await countLog(store, v2Types), 'v2 after its restart: ');
    },
  },
];
