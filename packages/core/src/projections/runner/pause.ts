import type { ProjectionState } from '../types.ts';
import type { RunnerContext } from './context.ts';
import type { Worker } from './worker.ts';

/** How stale a read of the pause flag may be: a pause is honoured within this, at the next batch. */
export const PAUSE_CHECK_MS = 100;

interface PauseRead {
  at: number;
  paused: boolean;
}

// The last read per worker: one read a batch at most every PAUSE_CHECK_MS, not one every batch.
const reads = new WeakMap<object, PauseRead>();

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

/**
 * Before a batch: while the projection is paused on the database (from any
 * process, `ProjectionBackend.setPaused`), holds in the `'paused'` state,
 * reading the flag again every `PAUSE_CHECK_MS`; back to the state it had
 * once resumed. Resolves at once on a backend that cannot pause, or when the
 * worker's signal aborts.
 *
 * @example
 * await holdWhilePaused(ctx, w); // at the top of each turn of the catch-up loop
 */
export async function holdWhilePaused<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>): Promise<void> {
  const { backend } = ctx;
  if (!backend.loadPaused) return;
  const signal = w.abort.signal;
  let before: ProjectionState | undefined;
  while (!signal.aborted) {
    let read = reads.get(w);
    if (!read || Date.now() - read.at >= PAUSE_CHECK_MS) {
      read = { at: Date.now(), paused: await backend.loadPaused(w.projection.name) };
      reads.set(w, read);
    }
    if (!read.paused) break;
    if (before === undefined) before = w.state;
    w.state = 'paused';
    await pauseFor(PAUSE_CHECK_MS, signal);
  }
  if (before !== undefined && w.state === 'paused') w.state = before;
}
