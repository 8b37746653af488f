import assert from 'node:assert/strict';
import { describe, it, after as suiteAfter } from 'node:test';
import { ProjectionFailedError, type ProjectionSupersededError, TimeoutError } from '../errors/index.ts';
import { createProjectionRunner, type ProjectionRunner, type ProjectionRunnerOptions } from '../projections/runner.ts';
import type { Projection, ProjectionBackend, ProjectionStatus, RebuildProgress } from '../projections/types.ts';
import type { AppendResult, EventStore, RecordedEvent } from '../store/types.ts';
import { collectAll, rejectsWithCode, uniqueCategory } from './conformance/context.ts';
import { projectionTransactionCases } from './projection-conformance-transactions.ts';

/** What a counter read model holds for one projection. */
export interface CounterSnapshot {
  /** Events applied per stream id. */
  perStream: Record<string, number>;
  /** The position of every applied event, in the order applied, duplicates kept. */
  applied: number[];
}

/**
 * A tiny read model the adapter writes in its own SQL, so the suite can check
 * what a projection really committed. Its rows are kept per projection name
 * (cases share tables; the model of a projection's second version is kept
 * under another name, standing for its own tables); it must not de-duplicate:
 * an event applied twice counts twice and shows twice in `applied`.
 */
export interface CounterModel<Tx> {
  /** Creates the tables if they are missing (runs for every projection built on the model). */
  init(tx: Tx): void | Promise<void>;
  /** Deletes the rows of `projection`, and only those. */
  reset(tx: Tx, projection: string): void | Promise<void>;
  /** For each event: adds 1 to the (projection, stream) counter and records (projection, position). */
  apply(tx: Tx, events: readonly RecordedEvent[], projection: string): void | Promise<void>;
  /** What is committed for `projection`. */
  read(projection: string): Promise<CounterSnapshot>;
}

/** One store, its projection backend and a counter model on them. */
export interface ProjectionEnvironment<Tx> {
  store: EventStore;
  backend: ProjectionBackend<Tx>;
  model: CounterModel<Tx>;
  /** Releases what the environment holds (called after each case, once its runners are stopped). */
  close(): Promise<void>;
}

/** Names used by one case only, so cases can share an environment. */
export interface CaseNames {
  /** A projection name. */
  projection: string;
  /** A stream category: stream ids are `${category}-…`. */
  category: string;
  /** The event type the case's projection handles. */
  type: string;
  /** An event type the case's projection does not handle. */
  otherType: string;
}

export interface ProjectionCaseContext<Tx> {
  store: EventStore;
  backend: ProjectionBackend<Tx>;
  model: CounterModel<Tx>;
  /**
   * A runner on the environment's backend, with a short idle check and short
   * backoffs unless `options` says otherwise. It is stopped after the case.
   */
  createRunner(projections: readonly Projection<Tx>[], options?: ProjectionRunnerOptions): ProjectionRunner;
  names(label?: string): CaseNames;
}

export interface ProjectionConformanceCase {
  name: string;
  run<Tx>(context: ProjectionCaseContext<Tx>): Promise<void>;
}

export interface ProjectionConformanceOptions<Tx> {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /**
   * Called once per case. It may return a fresh store each time or the same
   * one: every case uses projection names, categories and event types of its own.
   */
  createEnvironment(): Promise<ProjectionEnvironment<Tx>>;
  /** Called once after the whole suite. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason. */
  skip?: string | false;
}

// ---------------------------------------------------------------------------
// Helpers shared by the cases.

interface CounterBehaviour {
  /**
   * Events the handler fails on: it applies the batch's events before the
   * first such event, then throws (so a rollback must undo those writes).
   */
  failsOn?: (event: RecordedEvent) => boolean;
  /** Called with every batch before it is applied, inside the transaction. */
  onBatch?: (events: readonly RecordedEvent[]) => void;
  onFailure?: 'stop' | 'park';
  /** The projection's version (default: none given, i.e. 1). */
  version?: number;
  /** The name the model's rows are kept under. Default: the projection's name. */
  model?: string;
  /** The event types handled. Default: the case's `type`. */
  handles?: string[];
  /** The projection's `retire` hook (called after it went live, with the version before). */
  retire?: (previousVersion: number) => void;
}

const FAILURE = 'counter refused the event';

function counterProjection<Tx>(
  model: CounterModel<Tx>,
  names: CaseNames,
  behaviour: CounterBehaviour = {},
): Projection<Tx> {
  const name = behaviour.model ?? names.projection;
  const retire = behaviour.retire;
  return {
    name: names.projection,
    handles: behaviour.handles ?? [names.type],
    init: (tx) => model.init(tx),
    reset: (tx) => model.reset(tx, name),
    handle: (events, tx) => {
      behaviour.onBatch?.(events);
      const failsOn = behaviour.failsOn;
      const bad = failsOn ? events.findIndex((e) => failsOn(e)) : -1;
      if (bad === -1) return model.apply(tx, events, name);
      const error = new Error(`${FAILURE} at position ${(events[bad] as RecordedEvent).position}`);
      const before = events.slice(0, bad);
      const pending = before.length > 0 ? model.apply(tx, before, name) : undefined;
      if (pending && typeof (pending as Promise<void>).then === 'function') {
        return (pending as Promise<void>).then(() => {
          throw error;
        });
      }
      throw error;
    },
    ...(behaviour.onFailure ? { onFailure: behaviour.onFailure } : {}),
    ...(behaviour.version !== undefined ? { version: behaviour.version } : {}),
    ...(retire ? { retire: (_tx: Tx, previous: number) => retire(previous) } : {}),
  };
}

/** Appends `count` events of `type`, `perAppend` at a time, round-robin over `streams` streams. */
async function appendEvents(
  store: EventStore,
  names: CaseNames,
  count: number,
  options: { streams?: number; perAppend?: number; type?: string; data?: (i: number) => unknown } = {},
): Promise<AppendResult[]> {
  const streams = options.streams ?? 3;
  const perAppend = options.perAppend ?? 1;
  const results: AppendResult[] = [];
  for (let i = 0, append = 0; i < count; append++) {
    const size = Math.min(perAppend, count - i);
    const events = Array.from({ length: size }, (_, j) => ({
      type: options.type ?? names.type,
      data: options.data ? options.data(i + j) : { i: i + j },
    }));
    results.push(await store.append(`${names.category}-${append % streams}`, events));
    i += size;
  }
  return results;
}

const lastPosition = (results: readonly AppendResult[]): number =>
  results.reduce((max, r) => Math.max(max, r.position), 0);

/**
 * What the model must hold if every event of `type` in the log was applied
 * exactly once, in order (only those `keep` accepts, when given).
 */
async function countLog(
  store: EventStore,
  type: string | string[],
  keep: (position: number) => boolean = () => true,
): Promise<CounterSnapshot> {
  const types = typeof type === 'string' ? [type] : type;
  const events = (await collectAll(store, { types })).filter((e) => keep(e.position));
  const perStream: Record<string, number> = {};
  for (const e of events) perStream[e.streamId] = (perStream[e.streamId] ?? 0) + 1;
  return { perStream, applied: events.map((e) => e.position) };
}

function duplicates(positions: readonly number[]): number[] {
  const seen = new Set<number>();
  const twice = new Set<number>();
  for (const p of positions) (seen.has(p) ? twice : seen).add(p);
  return [...twice];
}

/** Asserts the model holds exactly `expected.applied` (in order, no duplicate) and its per-stream counts. */
function assertModel(actual: CounterSnapshot, expected: CounterSnapshot, when = ''): void {
  const twice = duplicates(actual.applied);
  assert.deepEqual(twice, [], `${when}positions applied more than once: ${twice.slice(0, 10).join(', ')}`);
  const missing = expected.applied.filter((p) => !actual.applied.includes(p));
  assert.deepEqual(missing, [], `${when}positions never applied: ${missing.slice(0, 10).join(', ')}`);
  assert.deepEqual(actual.applied, expected.applied, `${when}applied positions differ (order or extra events)`);
  assert.deepEqual(actual.perStream, expected.perStream, `${when}per-stream counters differ`);
}

/** Polls `check` until it holds; fails after `timeoutMs`. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  what: () => string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const describeStatus = (status: ProjectionStatus) =>
  JSON.stringify({ ...status, lastError: status.lastError?.message });

/** Waits until the projection is idle in the `running` state. */
const untilRunning = (runner: ProjectionRunner, name: string) =>
  eventually(
    () => runner.status(name).state === 'running',
    () => `'${name}' to be running (${describeStatus(runner.status(name))})`,
  );

const noSleep = async () => {};

// ---------------------------------------------------------------------------
// The cases.

/** Every case of the projection runtime contract, run by each adapter against itself. */
export const projectionConformanceCases: readonly ProjectionConformanceCase[] = [
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
  ...projectionTransactionCases,
];

// ---------------------------------------------------------------------------
// Registration with node:test.

/**
 * Registers the projection runtime contract with `node:test`: one test per
 * case, each on an environment from `createEnvironment`. Every adapter with a
 * projection backend runs it; the cases are also exported as data
 * (`projectionConformanceCases`) for other test runners.
 *
 * @example
 * testProjectionConformance({ name: 'sqlite (file)', createEnvironment: async () => ({ store, backend, model, close }) });
 */
export function testProjectionConformance<Tx>(options: ProjectionConformanceOptions<Tx>): void {
  describe(`Projection conformance: ${options.name}`, { skip: options.skip || false }, () => {
    suiteAfter(async () => {
      await options.teardown?.();
    });
    for (const conformanceCase of projectionConformanceCases) {
      it(conformanceCase.name, { timeout: 60_000 }, async () => {
        const environment = await options.createEnvironment();
        const runners: ProjectionRunner[] = [];
        try {
          await conformanceCase.run<Tx>({
            store: environment.store,
            backend: environment.backend,
            model: environment.model,
            createRunner(projections, runnerOptions) {
              const runner = createProjectionRunner(environment.backend, projections, {
                idleCheckMs: 50,
                initialBackoffMs: 1,
                maxBackoffMs: 5,
                ...runnerOptions,
              });
              runners.push(runner);
              return runner;
            },
            names(label = 'p') {
              const category = uniqueCategory(label);
              return { projection: category, category, type: `${category}.Counted`, otherType: `${category}.Other` };
            },
          });
        } finally {
          await Promise.allSettled(runners.map((runner) => runner.stop()));
          await environment.close();
        }
      });
    }
  });
}
