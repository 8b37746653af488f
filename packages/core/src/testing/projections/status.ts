import assert from 'node:assert/strict';
import { TimeoutError } from '../../errors/index.ts';
import type { ProjectionRunner } from '../../projections/runner.ts';
import type { ProjectionStatus } from '../../projections/types.ts';
import type { AppendResult } from '../../store/types.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import type { ProjectionConformanceCase } from './context.ts';
import { appendEvents, counterProjection, describeStatus, eventually, lastPosition, untilRunning } from './counter.ts';

/** Waiting and status: waitFor on passed, future and unhandled positions; checkpoint, head and lag. */
export const statusCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'waitFor: a passed position, a future one, an unhandled event type; TimeoutError when never reached',
    async run({ store, model, createRunner, names }) {
      const n = names('wait');
      const seeded = await appendEvents(store, n, 5);
      const runner = createRunner([counterProjection(model, n)], { idleCheckMs: 20 });
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));

      // Already passed: resolves at once, even with a timeout too short for anything else.
      await runner.waitFor(n.projection, (seeded[0] as AppendResult).position, { timeoutMs: 1 });
      await runner.waitFor(n.projection, lastPosition(seeded), { timeoutMs: 1 });

      // A future position: pending until an event reaches it.
      const head = await store.headPosition();
      let settled = false;
      const future = runner.waitFor(n.projection, head + 1, { timeoutMs: 10_000 });
      future.then(
        () => {
          settled = true;
        },
        () => {},
      );
      // Not a synchronisation: time for several idle checks (20 ms), in which it must not resolve.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(settled, false, 'waitFor resolved for a position not yet appended');
      const appended = await store.append(`${n.category}-0`, [{ type: n.type, data: {} }]);
      await future;
      assert.ok(runner.status(n.projection).checkpoint >= head + 1);
      await runner.waitFor(n.projection, appended.position);
      assert.ok((await model.read(n.projection)).applied.includes(appended.position));

      // An event the projection does not handle still counts as passed.
      const modelBefore = await model.read(n.projection);
      const other = await store.append(`${n.category}-1`, [{ type: n.otherType, data: {} }]);
      await runner.waitFor(n.projection, other.position, { timeoutMs: 5000 });
      assert.deepEqual(await model.read(n.projection), modelBefore);

      // Never reached.
      const started = Date.now();
      const timeout = await rejectsWithCode(
        runner.waitFor(n.projection, other.position + 1_000_000, { timeoutMs: 50 }),
        'TIMEOUT',
      );
      assert.ok(timeout instanceof TimeoutError);
      const waited = Date.now() - started;
      assert.ok(waited >= 40 && waited < 2000, `the TimeoutError of a 50 ms wait came after ${waited} ms`);
      assert.notEqual(runner.status(n.projection).state, 'failed');
    },
  },
  {
    name: 'status: checkpoint, head and lag while catching up, then lag 0 and running',
    async run({ store, model, createRunner, names }) {
      const n = names('status');
      const seeded = await appendEvents(store, n, 40, { perAppend: 4 });
      let during: ProjectionStatus | undefined;
      const runner: ProjectionRunner = createRunner(
        [
          counterProjection(model, n, {
            onBatch: () => {
              during ??= runner.status(n.projection);
            },
          }),
        ],
        { batchSize: 10 },
      );
      assert.equal(runner.status(n.projection).state, 'stopped');
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      assert.ok(during, 'the handler never ran');
      assert.equal(during.name, n.projection);
      assert.equal(during.state, 'catching-up');
      assert.ok(during.head >= lastPosition(seeded), `head ${during.head} while catching up`);
      assert.ok(during.checkpoint < (seeded[0] as AppendResult).position, 'checkpoint past an event not applied');
      assert.equal(during.lag, during.head - during.checkpoint);
      assert.ok(during.lag > 0);

      const other = await store.append(`${n.category}-x`, [{ type: n.otherType, data: {} }]);
      await runner.waitFor(n.projection, other.position);
      await untilRunning(runner, n.projection);
      const head = await store.headPosition();
      await eventually(
        () => runner.status(n.projection).checkpoint === head,
        () => `checkpoint at the head ${head} (${describeStatus(runner.status(n.projection))})`,
      );
      const status = runner.status(n.projection);
      assert.equal(status.name, n.projection);
      assert.equal(status.state, 'running');
      assert.equal(status.version, 1);
      assert.equal(status.liveVersion, 1);
      assert.equal(status.head, head);
      assert.equal(status.lag, 0);
      assert.equal(status.parked, 0);
      assert.equal(status.lastError, undefined);
      assert.deepEqual(
        runner.status().map((s) => s.name),
        [n.projection],
      );
      await runner.stop();
      assert.equal(runner.status(n.projection).state, 'stopped');
    },
  },
];
