import { log } from '../../logging/logger.ts';
import { readAllForProjection } from '../../schema/projection-read.ts';
import type { RecordedEvent } from '../../store/types.ts';
import { sleepUnlessAborted } from '../subscription-wait.ts';
import { applyBatch } from './batch-apply.ts';
import type { RunnerContext } from './context.ts';
import { honourControls } from './controls.ts';
import { reportRebuild } from './rebuild.ts';
import { checkSuperseded, switchLive } from './versions.ts';
import { settleWaiters } from './waiters.ts';
import { versionOf, type Worker } from './worker.ts';

/** Up to `limit` events of the projection's types after `after`, in log order. */
async function readBatch<Tx>(
  ctx: RunnerContext<Tx>,
  w: Worker<Tx>,
  limit: number,
  after = w.checkpoint,
): Promise<RecordedEvent[]> {
  const batch: RecordedEvent[] = [];
  // Decoded like every read; an event that fails to decode comes as stored, for applyBatch to attribute.
  for await (const event of readAllForProjection(ctx.backend.store, {
    after,
    types: w.projection.handles,
    limit,
    batchSize: limit,
  })) {
    batch.push(event);
  }
  return batch;
}

/**
 * One projection's loop until `signal` (this loop's own) aborts, it fails or a newer version
 * is live: catch up from the checkpoint in batches that double while they
 * come back full (the next one read while the current one commits), then
 * follow the log live, waiting for the backend's append signal (or
 * `idleCheckMs`) when idle. After every batch it moves the checkpoint, the
 * head, the waiters and the rebuild's progress; a version built side by side
 * goes live once it has caught up. Before each batch it honours the requests
 * left in the database (`controls.ts`): it holds while paused, and ends for
 * the runner to rebuild when a rebuild is requested.
 */
export async function catchUpAndFollow<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>, signal: AbortSignal): Promise<void> {
  const { backend, batchSize, maxBatchSize, idleCheckMs } = ctx;
  const store = backend.store;
  // While catching up, the next batch is read while the current one commits.
  let prefetched: { after: number; limit: number; batch: Promise<RecordedEvent[]> } | undefined;
  let previousFull = false;
  let headReadAt = 0;
  /** The next batch's size: grows while catching up, back to `batchSize` once live. */
  let size = batchSize;
  while (!signal.aborted) {
    const rebuildRequestedAt = await honourControls(ctx, w, signal);
    if (rebuildRequestedAt !== undefined) {
      // The runner rebuilds once this loop has ended (`runner.ts`).
      w.rebuildRequestedAt = rebuildRequestedAt;
      return;
    }
    if (signal.aborted) break;
    const isolating = w.isolateUntil > w.checkpoint;
    const limit = isolating ? 1 : size;
    // The head, read before the batch, lets a short batch move the checkpoint up to it. While
    // batches come back full it is not needed for that, only for status: read it once a second.
    let headBefore: number | undefined;
    const usePrefetch = prefetched?.after === w.checkpoint && prefetched.limit === limit;
    if (!usePrefetch && (!previousFull || Date.now() - headReadAt > 1000)) {
      headBefore = await store.headPosition();
      headReadAt = Date.now();
      w.head = Math.max(w.head, headBefore);
    } else if (Date.now() - headReadAt > 1000 || w.head <= w.checkpoint) {
      // While catching up, keep the head ahead of the checkpoint, or lag would read 0 too early.
      w.head = Math.max(w.head, await store.headPosition());
      headReadAt = Date.now();
    }
    const batch = usePrefetch
      ? await (prefetched as { batch: Promise<RecordedEvent[]> }).batch
      : await readBatch(ctx, w, limit);
    prefetched = undefined;
    const full = batch.length === limit;
    previousFull = full;
    if (!isolating) size = full ? Math.min(size * 2, maxBatchSize) : batchSize;
    if (!w.rebuild && !isolating && full) w.state = 'catching-up';
    if (batch.length > 0) {
      const last = (batch[batch.length - 1] as RecordedEvent).position;
      // A short page read everything up to the head seen before it: nothing of ours lies between.
      const next = !full && !isolating && headBefore !== undefined ? Math.max(last, headBefore) : last;
      if (full && !isolating) {
        const ahead = readBatch(ctx, w, size, last);
        ahead.catch(() => undefined); // read again (and fail visibly) in the next turn if it failed
        prefetched = { after: last, limit: size, batch: ahead };
      }
      if (!(await applyBatch(ctx, w, batch, next, signal))) return;
    } else if (headBefore !== undefined && headBefore > w.checkpoint) {
      // Nothing of ours up to the head: move the checkpoint there, so lag and waitFor see it.
      if (
        await backend.commit({ name: w.key, expected: w.checkpoint, checkpoint: headBefore, version: versionOf(w) })
      ) {
        w.checkpoint = headBefore;
      } else {
        w.checkpoint = await backend.loadCheckpoint(w.key);
        if (await checkSuperseded(ctx, w)) return;
      }
    }
    w.head = Math.max(w.head, w.checkpoint);
    settleWaiters(w);
    reportRebuild(w);
    if (!full && !signal.aborted) {
      // A version built side by side has caught up with the head it read (lag 0): it goes live.
      const caughtUp = !isolating && headBefore !== undefined && w.checkpoint >= headBefore;
      if (w.version > w.live && caughtUp && !(await switchLive(ctx, w))) return;
      if (!w.rebuild) w.state = w.version > w.live ? 'catching-up' : 'running';
      if (headBefore !== undefined && w.checkpoint >= (await store.headPosition())) {
        // Idle: has a newer version gone live meanwhile? (A batch's commit would be refused anyway.)
        if (w.live > w.version || Date.now() - w.liveReadAt >= idleCheckMs) {
          if (await checkSuperseded(ctx, w)) return;
        }
        await backend.waitForAppends(w.checkpoint, idleCheckMs, signal);
      }
    }
  }
}

/**
 * A failed projection applies nothing until it is resumed or rebuilt, but the
 * log goes on: until `signal` (its loop's own) aborts, its head follows the
 * store's (woken by the append signal, or every `idleCheckMs`), so its lag in
 * `status()` and the lag gauges counts the events appended since. A failed
 * read is logged and tried again at the next check.
 */
export async function followHeadWhileFailed<Tx>(
  ctx: RunnerContext<Tx>,
  w: Worker<Tx>,
  signal: AbortSignal,
): Promise<void> {
  const { backend, idleCheckMs } = ctx;
  while (!signal.aborted && w.state === 'failed') {
    try {
      w.head = Math.max(w.head, await backend.store.headPosition());
      await backend.waitForAppends(w.head, idleCheckMs, signal);
    } catch (err) {
      log(
        ctx.logger,
        'warn',
        { projection: w.projection.name, err },
        `projection ${w.projection.name}: reading the head failed`,
      );
      await sleepUnlessAborted(idleCheckMs, signal);
    }
  }
}
