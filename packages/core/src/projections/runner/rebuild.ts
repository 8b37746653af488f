import { StorageError, TimeoutError } from '../../errors/index.ts';
import type { RebuildProgress } from '../types.ts';
import type { RunnerContext } from './context.ts';
import { checkSuperseded } from './versions.ts';
import { recordError, versionOf, type Worker } from './worker.ts';

/** A rebuild in flight: how far it has to go, how far it got, and its caller's promise. */
export interface RebuildRun {
  target: number;
  applied: number;
  startedAt: number;
  startPosition: number;
  onProgress: ((progress: RebuildProgress) => void) | undefined;
  done: () => void;
  fail: (error: unknown) => void;
}

/**
 * Empties the read model (`reset`) and sets the checkpoint to 0 in one
 * commit. When another runner moved the checkpoint it tries once more from
 * the saved one; throws `ProjectionSupersededError` once a newer version is live.
 */
export async function resetForRebuild<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<void> {
  const { backend } = ctx;
  const resetModel = w.projection.reset;
  const work = resetModel ? (tx: Tx) => resetModel(tx) : undefined;
  const reset = () =>
    backend.commit({
      name: w.key,
      expected: w.checkpoint,
      checkpoint: 0,
      work,
      version: versionOf(w),
      resetParked: true,
    });
  if (!(await reset())) {
    w.checkpoint = await backend.loadCheckpoint(w.key);
    if (await checkSuperseded(ctx, w)) throw w.superseded;
    if (!(await reset())) {
      // Moved again: another runner writes it. Nothing was reset, so the rebuild must not report it done.
      throw new StorageError(
        `the checkpoint of projection '${w.projection.name}' moved twice while its rebuild reset it: another runner is writing it; nothing was reset`,
        { retryable: true },
      );
    }
  }
  w.checkpoint = 0;
  w.isolateUntil = 0;
  // Its parked events went with the reset: the replay counts those it parks again.
  w.parked = 0;
}

/** Starts tracking a rebuild from 0 up to `target`; the promise settles when `reportRebuild` reaches it or it fails. */
export function trackRebuild<Tx>(w: Worker<Tx>, target: number, onProgress: RebuildRun['onProgress']): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    w.rebuild = {
      target,
      applied: 0,
      startedAt: Date.now(),
      startPosition: 0,
      onProgress,
      done: resolve,
      fail: reject,
    };
  });
}

/** After a batch: tells `onProgress` where the rebuild is, and ends it once the checkpoint reached its target. */
export function reportRebuild<Tx>(w: Worker<Tx>): void {
  const rebuild = w.rebuild;
  if (!rebuild) return;
  const seconds = Math.max((Date.now() - rebuild.startedAt) / 1000, 1e-3);
  const span = Math.max(rebuild.target - rebuild.startPosition, 1);
  const done = Math.min(w.checkpoint, rebuild.target) - rebuild.startPosition;
  const positionRate = done / seconds;
  rebuild.onProgress?.({
    projection: w.projection.name,
    position: w.checkpoint,
    target: rebuild.target,
    applied: rebuild.applied,
    fraction: Math.min(1, Math.max(0, done / span)),
    rate: rebuild.applied / seconds,
    etaSeconds: positionRate > 0 ? Math.max(0, rebuild.target - w.checkpoint) / positionRate : 0,
  });
  if (w.checkpoint >= rebuild.target) {
    w.rebuild = undefined;
    rebuild.done();
  }
}

/** The projection was stopped before its rebuild finished: its caller must not wait forever. */
export function abandonRebuild<Tx>(w: Worker<Tx>): void {
  const rebuild = w.rebuild;
  w.rebuild = undefined;
  rebuild?.fail(new TimeoutError(`projection '${w.projection.name}' was stopped before its rebuild finished`));
}

/** What `rebuildOnRequest` needs of its runner. */
export interface RequestedRebuildRunner<Tx> {
  halt(w: Worker<Tx>): Promise<void>;
  run(w: Worker<Tx>): void;
  /** `resetForRebuild`, which the runner's `stop()` waits for. */
  reset(w: Worker<Tx>): Promise<void>;
  started(): boolean;
  /** How many times the runner was stopped: a rebuild that saw it change starts no loop. */
  stops(): number;
  /** Names rebuilding now: a rebuild asked through `rebuild()` is never run twice at once. */
  rebuilding: Set<string>;
}

/**
 * A rebuild another process asked for through the database: once the
 * worker's loop has ended, resets the read model and the checkpoint, clears
 * the request (so its asker, seeing it gone, reads a checkpoint that already
 * went back), then runs up to the head. A failure is recorded on the
 * projection and it goes on from where it is.
 *
 * @example
 * void rebuildOnRequest(ctx, w, requestedAt, { halt, run, reset, started: () => started, stops: () => stops, rebuilding });
 */
export async function rebuildOnRequest<Tx>(
  ctx: RunnerContext<Tx>,
  w: Worker<Tx>,
  requestedAt: number,
  runner: RequestedRebuildRunner<Tx>,
): Promise<void> {
  const name = w.projection.name;
  if (!runner.started() || runner.rebuilding.has(name)) return;
  const stopsBefore = runner.stops();
  /** Not stopped since the request was taken (a stop and a start meanwhile started the loop again). */
  const running = () => runner.started() && runner.stops() === stopsBefore;
  runner.rebuilding.add(name);
  try {
    await runner.halt(w);
    // Stopped while its loop ended: nothing is reset.
    if (!running()) return;
    await runner.reset(w);
    await ctx.backend.clearRebuildRequest?.(name, requestedAt);
    const target = await ctx.backend.store.headPosition();
    // Stopped meanwhile: it stays stopped (the next start catches up from the reset checkpoint).
    if (!running()) return;
    const finished = trackRebuild(w, target, undefined);
    runner.run(w);
    await finished;
  } catch (error) {
    if (!running()) return;
    recordError(ctx, w, error, w.checkpoint);
    if (!w.loop) runner.run(w);
  } finally {
    runner.rebuilding.delete(name);
  }
}
