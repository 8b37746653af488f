import { type ProjectionFailedError, type ProjectionSupersededError, ValidationError } from '../../errors/index.ts';
import { log } from '../../logging/logger.ts';
import { projectionIssues } from '../projection-check.ts';
import type {
  Projection,
  ProjectionBackend,
  ProjectionError,
  ProjectionState,
  ProjectionStatus,
  ProjectionVersionRef,
} from '../types.ts';
import { projectionVersionKey } from '../types.ts';
import type { RunnerContext } from './context.ts';
import type { RebuildRun } from './rebuild.ts';
import { endWaits, type Waiter } from './waiters.ts';

/** One projection's state in a runner: what its loop, its status and its waiters read and write. */
export interface Worker<Tx> {
  projection: Projection<Tx>;
  /** `projection.version`, default 1. */
  version: number;
  /** The name of this version's checkpoint (and parked events). */
  key: string;
  /** The live version as last read, and when. */
  live: number;
  liveReadAt: number;
  /** Set when a newer version is live: the runner does not run this one. */
  superseded: ProjectionSupersededError | undefined;
  state: ProjectionState;
  checkpoint: number;
  head: number;
  lastError: ProjectionError | undefined;
  failure: ProjectionFailedError | ProjectionSupersededError | undefined;
  parked: number;
  /** While set, events are applied one at a time up to this position, to find the one that fails. */
  isolateUntil: number;
  waiters: Waiter[];
  abort: AbortController;
  loop: Promise<void> | undefined;
  rebuild: RebuildRun | undefined;
  /** Set when the loop ended for a rebuild another process requested (the request's time). */
  rebuildRequestedAt?: number | undefined;
}

/** One worker per projection, by name; a `ValidationError` for the first projection defined wrong. */
export function createWorkers<Tx>(
  backend: ProjectionBackend<Tx>,
  projections: readonly Projection<Tx>[],
): Map<string, Worker<Tx>> {
  const workers = new Map<string, Worker<Tx>>();
  for (const projection of projections) {
    const issues = projectionIssues(projection as Projection<never>, new Set(workers.keys()));
    const version = projection?.version ?? 1;
    const versionRefused = issues.some((issue) => issue.path === 'version');
    if (!versionRefused && version > 1 && (!backend.loadLiveVersion || !backend.recordLiveVersion)) {
      issues.push({ path: 'version', message: 'this backend records no live versions: only version 1 runs on it' });
    }
    if (issues.length > 0) throw new ValidationError(issues);
    workers.set(projection.name, {
      projection,
      version,
      key: projectionVersionKey(projection.name, version),
      live: 1,
      liveReadAt: 0,
      superseded: undefined,
      state: 'stopped',
      checkpoint: 0,
      head: 0,
      lastError: undefined,
      failure: undefined,
      parked: 0,
      isolateUntil: 0,
      waiters: [],
      abort: new AbortController(),
      loop: undefined,
      rebuild: undefined,
    });
  }
  return workers;
}

export const versionOf = <Tx>(w: Worker<Tx>): ProjectionVersionRef => ({
  projection: w.projection.name,
  version: w.version,
});

/** Keeps `error` as the projection's `lastError` and tells `onError`. */
export function recordError<Tx>(ctx: RunnerContext<Tx>, w: Worker<Tx>, error: unknown, position: number): void {
  w.lastError = {
    message: error instanceof Error ? error.message : String(error),
    ...(error instanceof Error && error.stack ? { stack: error.stack } : {}),
    position,
    at: new Date(),
  };
  try {
    ctx.onError?.(w.projection.name, error, position);
  } catch {
    // The hook's own failure changes nothing: the runner goes on, the error is logged below.
  }
  log(
    ctx.logger,
    'warn',
    { projection: w.projection.name, position, err: error },
    `projection ${w.projection.name}: batch failed`,
  );
}

/** The projection stopped on `failure` (`failed`): its rebuild and its waiters reject with it. */
export function markFailed<Tx>(w: Worker<Tx>, failure: ProjectionFailedError): void {
  w.state = 'failed';
  endWaits(w, failure);
}

/** What `status()` shows of a worker. */
export const statusOf = <Tx>(w: Worker<Tx>): ProjectionStatus => ({
  name: w.projection.name,
  state: w.state,
  version: w.version,
  liveVersion: w.live,
  checkpoint: w.checkpoint,
  head: w.head,
  lag: Math.max(0, w.head - w.checkpoint),
  ...(w.lastError ? { lastError: w.lastError } : {}),
  parked: w.parked,
});
