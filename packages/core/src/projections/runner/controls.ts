import type { ProjectionControl, ProjectionState } from '../types.ts';
import type { RunnerContext } from './context.ts';
import type { Worker } from './worker.ts';

/** How stale a read of the controls may be: a pause or a rebuild request is honoured within this. */
export const CONTROL_CHECK_MS = 100;

interface ControlRead extends ProjectionControl {
  at: number;
}

// The last read per worker: one read a batch at most every CONTROL_CHECK_MS, not one every batch.
const reads = new WeakMap<object, ControlRead>();

/** Resolves after `ms`, or at once when `signal` aborts. */
function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function read<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<ControlRead | undefined> {
  const load = ctx.backend.loadControl?.bind(ctx.backend);
  if (!load) return undefined;
  let last = reads.get(w);
  if (!last || Date.now() - last.at >= CONTROL_CHECK_MS) {
    last = { at: Date.now(), ...(await load(w.projection.name)) };
    reads.set(w, last);
  }
  return last;
}

/**
 * Before a batch, the requests other processes left in the database
 * (`ProjectionBackend.loadControl`): while the projection is paused, holds
 * in the `'paused'` state, reading again (and the head, so its lag counts the
 * events appended meanwhile) every `CONTROL_CHECK_MS`, back to the state it
 * had once resumed. Resolves with the time of a rebuild request
 * when there is one for this version (named, or none named while this
 * version is the live one as last read) and no rebuild runs (the runner then rebuilds), else
 * undefined; at once on a backend that takes no requests or when the
 * loop's `signal` aborts.
 *
 * @example
 * const rebuildRequestedAt = await honourControls(ctx, w, signal); // at the top of each turn of the catch-up loop
 */
export async function honourControls<Tx>(
  ctx: RunnerContext<Tx>,
  w: Worker<Tx>,
  signal: AbortSignal,
): Promise<number | undefined> {
  let before: ProjectionState | undefined;
  let control: ControlRead | undefined;
  while (!signal.aborted) {
    control = await read(ctx, w);
    if (!control?.paused) break;
    if (before === undefined) before = w.state;
    w.state = 'paused';
    // Appends go on while it holds: its lag (status, gauges) counts them.
    w.head = Math.max(w.head, await ctx.backend.store.headPosition());
    await pauseFor(CONTROL_CHECK_MS, signal);
  }
  if (before !== undefined && w.state === 'paused') w.state = before;
  const requested = control?.rebuildRequestedAt ?? null;
  if (requested === null || w.rebuild || signal.aborted) return undefined;
  // Asked of another version (one built beside it, or the live one beside this): its runner takes it.
  if ((control?.rebuildVersion ?? w.live) !== w.version) return undefined;
  // Read again next time: the request is cleared once taken.
  reads.delete(w);
  return requested;
}
