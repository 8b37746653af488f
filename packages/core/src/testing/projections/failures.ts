import assert from 'node:assert/strict';
import { ProjectionFailedError } from '../../errors/index.ts';
import type { AppendResult, RecordedEvent } from '../../store/types.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import type { ProjectionConformanceCase } from './context.ts';
import {
  appendEvents,
  assertModel,
  counterProjection,
  countLog,
  FAILURE,
  lastPosition,
  noSleep,
  untilRunning,
} from './counter.ts';

/** A failing handler: retries, then failed (waiters rejected) or parked; resume after a fix. */
export const failureCases: readonly ProjectionConformanceCase[] = [
  {
    name: 'a handler that keeps failing: retries, then failed with the error and position; waiters rejected',
    async run({ store, model, createRunner, names }) {
      const n = names('fails');
      const seeded = await appendEvents(store, n, 10, { data: (i) => ({ i, poison: i === 5 }) });
      const poison = (seeded[5] as AppendResult).position;
      const errors: { projection: string; position: number; message: string }[] = [];
      const maxAttempts = 3;
      const runner = createRunner(
        [counterProjection(model, n, { failsOn: (e) => (e.data as { poison: boolean }).poison })],
        {
          batchSize: 4,
          maxAttempts,
          sleep: noSleep,
          onError: (projection, error, position) =>
            errors.push({ projection, position, message: (error as Error).message }),
        },
      );
      const early = runner.waitFor(n.projection, lastPosition(seeded), { timeoutMs: 10_000 });
      const beforePoison = runner.waitFor(n.projection, (seeded[4] as AppendResult).position, { timeoutMs: 10_000 });
      early.catch(() => {});
      await runner.start();

      const failure = await rejectsWithCode<ProjectionFailedError>(early, 'PROJECTION_FAILED');
      assert.ok(failure instanceof ProjectionFailedError);
      assert.equal(failure.projection, n.projection);
      assert.equal(failure.position, poison);
      assert.match(failure.message, new RegExp(FAILURE));
      await beforePoison;

      const status = runner.status(n.projection);
      assert.equal(status.state, 'failed');
      assert.equal(status.lastError?.position, poison);
      assert.match(status.lastError?.message ?? '', new RegExp(`${FAILURE} at position ${poison}`));
      assert.ok(
        status.checkpoint >= (seeded[4] as AppendResult).position && status.checkpoint < poison,
        `checkpoint ${status.checkpoint}: expected just before the failing event at ${poison}`,
      );
      assert.equal(
        errors.filter((e) => e.position === poison && e.projection === n.projection).length,
        maxAttempts,
        `expected ${maxAttempts} tries on the failing event, saw errors ${JSON.stringify(errors)}`,
      );
      const later = await rejectsWithCode<ProjectionFailedError>(
        runner.waitFor(n.projection, poison, { timeoutMs: 10_000 }),
        'PROJECTION_FAILED',
      );
      assert.equal(later.position, poison);
      await runner.waitFor(n.projection, (seeded[3] as AppendResult).position, { timeoutMs: 1 });

      // Events before the failing one applied exactly once (even those of its batch); none after.
      assertModel(
        await model.read(n.projection),
        await countLog(store, n.type, (p) => p < poison),
        'after the failure: ',
      );
    },
  },
  {
    name: 'resume after fixing the handler continues from the failing event',
    async run({ store, model, createRunner, names }) {
      const n = names('resume');
      const seeded = await appendEvents(store, n, 12, { data: (i) => ({ i, poison: i === 7 }) });
      let broken = true;
      const runner = createRunner(
        [counterProjection(model, n, { failsOn: (e) => broken && (e.data as { poison: boolean }).poison })],
        { batchSize: 5, maxAttempts: 2, sleep: noSleep },
      );
      await runner.start();
      await rejectsWithCode(runner.waitFor(n.projection, lastPosition(seeded)), 'PROJECTION_FAILED');
      assert.equal(runner.status(n.projection).state, 'failed');
      const failedAt = (seeded[7] as AppendResult).position;
      assert.equal(runner.status(n.projection).lastError?.position, failedAt);

      broken = false;
      const more = await appendEvents(store, n, 4);
      await runner.resume(n.projection);
      await runner.waitFor(n.projection, lastPosition(more));
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'after resume: ');
      await untilRunning(runner, n.projection);
      assert.equal(runner.status(n.projection).parked, 0);
    },
  },
  {
    name: 'an onError hook that throws changes nothing: the failing batch is retried and the projection goes on',
    async run({ store, model, createRunner, names }) {
      const n = names('hook-throws');
      const seeded = await appendEvents(store, n, 6, { data: (i) => ({ i, poison: i === 3 }) });
      let failures = 2;
      const told: number[] = [];
      const runner = createRunner(
        [
          counterProjection(model, n, {
            failsOn: (e) => (e.data as { poison: boolean }).poison && failures-- > 0,
          }),
        ],
        {
          batchSize: 2,
          maxAttempts: 5,
          sleep: noSleep,
          onError: (_projection, _error, position) => {
            told.push(position);
            throw new Error('the metrics client is not ready');
          },
        },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded), { timeoutMs: 10_000 });
      assert.equal(told.length, 2, 'each failure told, the hook throwing each time');
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'after the retries: ');
      await untilRunning(runner, n.projection);
    },
  },
  {
    name: "onFailure 'park': the failing events are parked with their error, the ones after them applied",
    async run({ store, model, createRunner, names }) {
      const n = names('park');
      const poisoned = new Set([3, 8]);
      const seeded = await appendEvents(store, n, 12, {
        streams: 2,
        data: (i) => ({ i, poison: poisoned.has(i) }),
      });
      const runner = createRunner(
        [
          counterProjection(model, n, {
            failsOn: (e) => (e.data as { poison: boolean }).poison,
            onFailure: 'park',
          }),
        ],
        { batchSize: 5, maxAttempts: 2, sleep: noSleep },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));

      const parkedResults = [...poisoned].map((i) => seeded[i] as AppendResult);
      const parked = await runner.parked(n.projection);
      assert.deepEqual(
        parked.map((p) => p.event.position),
        parkedResults.map((r) => r.position),
      );
      for (const [i, entry] of parked.entries()) {
        const stored = (parkedResults[i] as AppendResult).events[0] as RecordedEvent;
        assert.equal(entry.projection, n.projection);
        assert.equal(entry.version, 1);
        assert.equal(entry.event.id, stored.id);
        assert.equal(entry.event.streamId, stored.streamId);
        assert.equal(entry.event.type, n.type);
        assert.deepEqual(entry.event.data, stored.data);
        assert.match(entry.error, new RegExp(`${FAILURE} at position ${stored.position}`));
        assert.ok(entry.parkedAt instanceof Date && !Number.isNaN(entry.parkedAt.getTime()));
      }
      assert.equal((await runner.parked()).filter((p) => p.projection === n.projection).length, poisoned.size);

      assertModel(
        await model.read(n.projection),
        await countLog(store, n.type, (p) => !parkedResults.some((r) => r.position === p)),
        'after parking: ',
      );
      await untilRunning(runner, n.projection);
      const status = runner.status(n.projection);
      assert.equal(status.parked, poisoned.size);
      assert.equal(status.checkpoint, lastPosition(seeded));

      // It goes on live after parking.
      const more = await appendEvents(store, n, 2);
      await runner.waitFor(n.projection, lastPosition(more));
      assert.ok((await model.read(n.projection)).applied.includes(lastPosition(more)));
    },
  },
  {
    name: "onFailure 'park': an error whose text holds a NUL or a lone surrogate is parked with it, a NUL as U+2400 (␀), a lone surrogate as U+FFFD",
    async run({ store, model, createRunner, names }) {
      const n = names('park_text');
      const seeded = await appendEvents(store, n, 4, { data: (i) => ({ i, poison: i === 1 }) });
      const runner = createRunner(
        [
          counterProjection(model, n, {
            failsOn: (e) => (e.data as { poison: boolean }).poison,
            failureText: ': unexpected byte \u0000 in \ud800 the row',
            onFailure: 'park',
          }),
        ],
        { batchSize: 2, maxAttempts: 1, sleep: noSleep },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      const [entry, ...others] = await runner.parked(n.projection);
      assert.equal(others.length, 0);
      const position = (seeded[1] as AppendResult).position;
      assert.equal(entry?.event.position, position);
      assert.ok(
        entry?.error.includes(`${FAILURE} at position ${position}: unexpected byte \u2400 in \ufffd the row`),
        `the error as kept: ${entry?.error}`,
      );
      assert.equal(runner.status(n.projection).parked, 1);
    },
  },
  {
    name: "onFailure 'park', the handler fixed, then a rebuild: the events parked before are applied and parked no more",
    async run({ store, model, createRunner, names }) {
      const n = names('unpark');
      const seeded = await appendEvents(store, n, 6, { data: (i) => ({ i, poison: i === 2 }) });
      let broken = true;
      const runner = createRunner(
        [
          counterProjection(model, n, {
            failsOn: (e) => broken && (e.data as { poison: boolean }).poison,
            onFailure: 'park',
          }),
        ],
        { batchSize: 3, maxAttempts: 2, sleep: noSleep },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      assert.equal((await runner.parked(n.projection)).length, 1);
      broken = false;
      await runner.rebuild(n.projection);
      await untilRunning(runner, n.projection);
      assert.deepEqual(await runner.parked(n.projection), [], 'applied by the rebuild: parked no more');
      assert.equal(runner.status(n.projection).parked, 0);
      assertModel(await model.read(n.projection), await countLog(store, n.type), 'after the rebuild: ');
    },
  },
  {
    name: "onFailure 'park' and a rebuild: the events parked before are parked again, once each, and the rebuild finishes",
    async run({ store, model, createRunner, names }) {
      const n = names('repark');
      const poisoned = new Set([2, 5]);
      const seeded = await appendEvents(store, n, 8, { data: (i) => ({ i, poison: poisoned.has(i) }) });
      const runner = createRunner(
        [
          counterProjection(model, n, {
            failsOn: (e) => (e.data as { poison: boolean }).poison,
            onFailure: 'park',
          }),
        ],
        { batchSize: 3, maxAttempts: 2, sleep: noSleep },
      );
      await runner.start();
      await runner.waitFor(n.projection, lastPosition(seeded));
      const parkedPositions = [...poisoned].map((i) => (seeded[i] as AppendResult).position);
      assert.deepEqual(
        (await runner.parked(n.projection)).map((p) => p.event.position),
        parkedPositions,
      );

      await runner.rebuild(n.projection);
      await untilRunning(runner, n.projection);
      const status = runner.status(n.projection);
      assert.equal(status.checkpoint, lastPosition(seeded), 'the rebuild reached the head');
      assert.deepEqual(
        (await runner.parked(n.projection)).map((p) => p.event.position),
        parkedPositions,
        'one entry per parked event',
      );
      assertModel(
        await model.read(n.projection),
        await countLog(store, n.type, (p) => !parkedPositions.includes(p)),
        'after the rebuild: ',
      );
    },
  },
];
