import { ProjectionSupersededError } from '../../errors/index.ts';
import { log } from '../../logging/logger.ts';
import type { RunnerContext } from './context.ts';
import { endWaits } from './waiters.ts';
import { recordError, type Worker } from './worker.ts';

/** Reads the version recorded as live (1 on a backend that records none) into `w.live`. */
export async function readLive<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<number> {
  w.live = ctx.backend.loadLiveVersion ? await ctx.backend.loadLiveVersion(w.projection.name) : 1;
  w.liveReadAt = Date.now();
  return w.live;
}

/** A newer version is live: this one stops (`stopped`, with the reason as `lastError`) and waiters reject. */
export function supersede<Tx>(w: Worker<Tx>): void {
  const error = new ProjectionSupersededError(w.projection.name, w.version, w.live);
  w.superseded = error;
  w.state = 'stopped';
  w.lastError = { message: error.message, position: w.checkpoint, at: new Date() };
  endWaits(w, error);
}

/** Reads the live version; true (and superseded) when it is newer than this one. */
export async function checkSuperseded<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<boolean> {
  if ((await readLive(ctx, w)) <= w.version) return false;
  supersede(w);
  return true;
}

/**
 * This version (newer than the live one) has caught up: record it as live,
 * then tell `onSwitch` and let the projection retire the version before.
 * Returns false when a still newer version went live first (superseded).
 */
export async function switchLive<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<boolean> {
  const name = w.projection.name;
  // (A version above 1 only runs on a backend that records live versions.)
  const before = (await ctx.backend.recordLiveVersion?.(name, w.version)) ?? w.version;
  w.liveReadAt = Date.now();
  if (before > w.version) {
    w.live = before;
    supersede(w);
    return false;
  }
  w.live = w.version;
  if (before < w.version) {
    try {
      log(
        ctx.logger,
        'info',
        { projection: name, from: before, to: w.version },
        `projection ${name}: version ${w.version} live`,
      );
      ctx.onSwitch?.(name, before, w.version);
    } catch {
      // The callback's own failure changes nothing.
    }
    const retire = w.projection.retire;
    if (retire) {
      try {
        await ctx.backend.transaction((tx) => retire(tx, before));
      } catch (error) {
        recordError(ctx, w, error, w.checkpoint);
      }
    }
  }
  return true;
}
