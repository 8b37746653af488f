import { ProjectionFailedError, TimeoutError, ValidationError } from '../errors/index.ts';
import { type Logger, log } from '../logging/logger.ts';
import { checkProjectionRunnerOptions, checkRebuildOptions, checkWaitForOptions } from '../options/core-options.ts';
import { assertIntegerOption, assertPosition } from '../store/validation.ts';
import { catchUpAndFollow, followHeadWhileFailed } from './runner/catch-up.ts';
import { runnerContext } from './runner/context.ts';
import { observeProjectionLag } from './runner/lag-metrics.ts';
import { abandonRebuild, rebuildOnRequest, resetForRebuild, trackRebuild } from './runner/rebuild.ts';
import { readLive, supersede } from './runner/versions.ts';
import { rejectWaitersOnStop, waitForPosition } from './runner/waiters.ts';
import { createWorkers, markFailed, recordError, statusOf, type Worker } from './runner/worker.ts';
import type {
  ParkedEvent,
  Projection,
  ProjectionBackend,
  ProjectionState,
  ProjectionStatus,
  RebuildProgress,
} from './types.ts';

export interface ProjectionRunnerOptions {
  /** Most events applied in one transaction while live (and the first batch of a catch-up). Default 500. */
  batchSize?: number;
  /**
   * While catching up (batches come back full) each batch is twice the size
   * of the one before, up to this many events; the first short batch goes
   * back to `batchSize`. Fewer, larger transactions let a handler fold more
   * events into each write. Default 10 × `batchSize`.
   */
  maxBatchSize?: number;
  /** Tries per batch (and per event, once a failing event is being isolated). Default 5. */
  maxAttempts?: number;
  /** First retry delay ceiling in ms (full jitter, doubling). Default 100. */
  initialBackoffMs?: number;
  /**
   * Largest retry delay ceiling in ms: at least `initialBackoffMs` (one below
   * it is a `ValidationError`). Default 5000, or `initialBackoffMs` when larger.
   */
  maxBackoffMs?: number;
  /**
   * How long an idle projection waits for an append signal before looking
   * anyway (appends from another process do not signal). Default 1000 ms.
   */
  idleCheckMs?: number;
  /** Called on every handler error, retried or not (for logs and metrics). */
  onError?: (projection: string, error: unknown, position: number) => void;
  /**
   * Called when this runner makes a projection version live: the version
   * was newer than the live one and has caught up (`from` is the version
   * live before, `to` the projection's).
   */
  onSwitch?: (projection: string, from: number, to: number) => void;
  /** Told what `onError` and `onSwitch` are told (`warn`, `info`), and each projection that fails (`error`). Pino's shape. Default: no output. */
  logger?: Logger;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface WaitForOptions {
  /** Default 5000 ms. */
  timeoutMs?: number;
}

export interface RebuildOptions {
  /** Called after every batch of the rebuild (render it as a progress bar). */
  onProgress?: (progress: RebuildProgress) => void;
}

export interface ProjectionRunner {
  /** Creates the read models (`init`) and starts every projection: catch-up from its checkpoint, then live. */
  start(): Promise<void>;
  /** Stops taking batches, lets the batch in flight commit, then resolves. */
  stop(): Promise<void>;
  status(): ProjectionStatus[];
  status(name: string): ProjectionStatus;
  /**
   * Resolves once `name` has processed `position` (e.g. the position an
   * `append` returned), so the next read of its model sees that event: the
   * model of the version this runner runs. Rejects with `TimeoutError` after
   * `timeoutMs`, `ProjectionFailedError` if the projection fails first, or
   * `ProjectionSupersededError` once a newer version of it is live.
   */
  waitFor(name: string, position: number, options?: WaitForOptions): Promise<void>;
  /**
   * Empties the read model (`reset`) and replays the log from the start while
   * appends go on; resolves when it has caught up with the head it started at.
   */
  rebuild(name: string, options?: RebuildOptions): Promise<void>;
  /** Starts a `failed` projection again at the event it failed on. */
  resume(name: string): Promise<void>;
  /** Events parked by projections with `onFailure: 'park'` (of the version this runner runs, given a name). */
  parked(name?: string): Promise<ParkedEvent[]>;
  /**
   * The version of `name` recorded as live, read from the store (1 until a
   * newer version switched): the version whose tables reads should use.
   */
  liveVersion(name: string): Promise<number>;
}

/**
 * The runtime of async projections, the same on every adapter: each
 * projection catches up from its saved checkpoint in batches, then follows
 * the log live (woken by the adapter's append signal, with a periodic check
 * as a fallback). Every batch commits its read-model writes and its new
 * checkpoint in one transaction, so a crash at any point neither loses nor
 * re-applies an event. A failing batch is retried with backoff, then split
 * to find the failing event, which either stops the projection (`failed`,
 * with the error and the position) or is parked, as the projection says.
 *
 * The parts, in `runner/`: the loop (`catch-up.ts`), one batch's commit with
 * its retries (`batch-apply.ts`), live versions (`versions.ts`), `waitFor`'s
 * waiters (`waiters.ts`), rebuilds (`rebuild.ts`) and each projection's state
 * (`worker.ts`).
 */
export function createProjectionRunner<Tx>(
  backend: ProjectionBackend<Tx>,
  projections: readonly Projection<Tx>[],
  given?: ProjectionRunnerOptions,
): ProjectionRunner {
  const ctx = runnerContext(backend, checkProjectionRunnerOptions(given) ?? {});
  const workers = createWorkers(backend, projections);
  const rebuilding = new Set<string>();
  let started = false;
  /** How many times the runner was stopped: a rebuild that saw it change starts no loop. */
  let stops = 0;
  /** Rebuild resets in flight. */
  const resets = new Set<Promise<void>>();
  let unobserve = () => {};

  const worker = (name: string): Worker<Tx> => {
    const found = workers.get(name);
    if (!found) throw new ValidationError({ path: 'projection', message: `no projection named '${name}'` });
    return found;
  };

  /**
   * Starts `w`'s loop; a worker has one at most. While its loop runs, this
   * joins it; while its loop is stopping (`halt`), the new one starts once
   * that one has ended. Each loop ends on its own signal only.
   */
  const run = (w: Worker<Tx>) => {
    if (w.loop && !w.abort.signal.aborted) return;
    const previous = w.loop ?? Promise.resolve();
    const abort = new AbortController();
    w.abort = abort;
    w.failure = undefined;
    w.state = w.rebuild ? 'rebuilding' : 'catching-up';
    const follow = async () => {
      await previous;
      if (abort.signal.aborted) return;
      w.state = w.rebuild ? 'rebuilding' : 'catching-up';
      try {
        await catchUpAndFollow(ctx, w, abort.signal);
      } catch (error) {
        // A storage failure outside the handler (reading the log, the checkpoint): visible, never silent.
        recordError(ctx, w, error, w.checkpoint);
        markFailed(w, new ProjectionFailedError(w.projection.name, w.checkpoint, error));
      }
      // (The loop changes `w.state`: read it again.)
      if ((w.state as ProjectionState) !== 'failed') return;
      log(
        ctx.logger,
        'error',
        { projection: w.projection.name, err: w.failure },
        `projection ${w.projection.name} failed`,
      );
      // Until resumed, rebuilt or stopped (`halt` aborts it), its lag counts the events appended since.
      await followHeadWhileFailed(ctx, w, abort.signal);
    };
    const loop = follow();
    w.loop = loop;
    void loop.then(() => {
      const requestedAt = w.rebuildRequestedAt;
      if (requestedAt !== undefined) {
        // Another process asked for a rebuild through the database (`controls.ts`).
        w.rebuildRequestedAt = undefined;
        void rebuildOnRequest(ctx, w, requestedAt, {
          halt,
          run,
          reset,
          started: () => started,
          stops: () => stops,
          rebuilding,
        });
      }
    });
  };

  /** Stops `w`'s loop and waits for it to end; a loop started meanwhile (`run`) is left running. */
  const halt = async (w: Worker<Tx>) => {
    const loop = w.loop;
    w.abort.abort();
    await loop;
    if (w.loop !== loop) return;
    w.loop = undefined;
    if (w.state !== 'failed') w.state = 'stopped';
    abandonRebuild(w);
  };

  /** Resets `w` for a rebuild; `stop()` waits for the resets in flight. */
  const reset = (w: Worker<Tx>): Promise<void> => {
    const resetting = resetForRebuild(ctx, w);
    resets.add(resetting);
    const forget = () => resets.delete(resetting);
    resetting.then(forget, forget);
    return resetting;
  };

  const stoppedBeforeRebuild = (w: Worker<Tx>) =>
    new TimeoutError(`projection '${w.projection.name}' was stopped before its rebuild finished`);

  const rebuildNow = async (w: Worker<Tx>, onProgress: RebuildOptions['onProgress']) => {
    const wasRunning = w.loop !== undefined;
    const stopsBefore = stops;
    await halt(w);
    // Stopped while its loop ended: nothing is reset.
    if (stops !== stopsBefore) throw stoppedBeforeRebuild(w);
    let target: number;
    try {
      await reset(w);
      target = await backend.store.headPosition();
    } catch (error) {
      // Nothing replayed: the projection goes on from its checkpoint (0 once the reset committed), and says why.
      recordError(ctx, w, error, w.checkpoint);
      if (wasRunning && started && stops === stopsBefore && !w.loop && !w.superseded) run(w);
      throw error;
    }
    if (stops !== stopsBefore) {
      // The runner stopped meanwhile: it stays stopped (the next start catches up from the reset checkpoint).
      throw stoppedBeforeRebuild(w);
    }
    const finished = trackRebuild(w, target, onProgress);
    run(w);
    await finished;
    if (!wasRunning && !started) await halt(w);
  };

  return {
    async start() {
      if (started) return;
      started = true;
      unobserve();
      unobserve = observeProjectionLag(() => workers.values(), backend.store, ctx.logger);
      /** A stop made while this start awaits (a checkpoint, an `init`) ends it: nothing starts after that stop. */
      const generation = stops;
      try {
        for (const w of workers.values()) {
          if (stops !== generation) return;
          w.superseded = undefined;
          w.failure = undefined;
          await readLive(ctx, w);
          w.checkpoint = await backend.loadCheckpoint(w.key);
          if (w.live > w.version) {
            // Never written to again: not even `init`.
            supersede(w);
            continue;
          }
          const init = w.projection.init;
          if (init) await backend.transaction((tx) => init(tx));
          if (stops !== generation) return;
          run(w);
        }
      } catch (error) {
        // Stopped meanwhile: that stop ended it, and what failed is of no use to anyone.
        if (stops !== generation) return;
        // Nothing of a start that failed goes on running: the caller gets no runner to stop.
        started = false;
        stops += 1;
        unobserve();
        await Promise.all([...workers.values()].map(halt));
        throw error;
      }
    },

    async stop() {
      started = false;
      stops += 1;
      unobserve();
      await Promise.all([...workers.values()].map(halt));
      // A reset in flight commits (or fails) before stop() resolves; none starts after it.
      await Promise.allSettled([...resets]);
      for (const w of workers.values()) rejectWaitersOnStop(w);
    },

    status: ((name?: string) => {
      if (name !== undefined) return statusOf(worker(name));
      return [...workers.values()].map(statusOf);
    }) as ProjectionRunner['status'],

    waitFor(name: string, position: number, given?: WaitForOptions) {
      let w: Worker<Tx>;
      let timeoutMs: number;
      try {
        const waitOptions = checkWaitForOptions(given) ?? {};
        w = worker(name);
        assertPosition(position);
        timeoutMs = assertIntegerOption(waitOptions?.timeoutMs, 'timeoutMs') ?? 5000;
      } catch (error) {
        return Promise.reject(error);
      }
      return waitForPosition(w, position, timeoutMs);
    },

    async rebuild(name: string, given?: RebuildOptions) {
      const rebuildOptions = checkRebuildOptions(given) ?? {};
      const w = worker(name);
      if (w.superseded) throw w.superseded;
      if (w.rebuild || rebuilding.has(name)) {
        throw new ValidationError({ path: 'projection', message: `'${name}' is already rebuilding` });
      }
      rebuilding.add(name);
      try {
        await rebuildNow(w, rebuildOptions.onProgress);
      } finally {
        rebuilding.delete(name);
      }
    },

    async resume(name: string) {
      const w = worker(name);
      // (The loop changes `w.state`: read it again.)
      if ((w.state as ProjectionState) !== 'failed') return;
      await halt(w);
      w.checkpoint = await backend.loadCheckpoint(w.key);
      run(w);
    },

    async parked(name?: string) {
      return backend.listParked(name === undefined ? undefined : worker(name).key);
    },

    async liveVersion(name: string) {
      return readLive(ctx, worker(name));
    },
  };
}
