import {
  isStorageError,
  isTimeoutError,
  ProjectionSupersededError,
  StorageError,
  TimeoutError,
  ValidationError,
} from '../errors/index.ts';
import { checkRebuildOptions, checkWaitForOptions } from '../options/core-options.ts';
import { assertIntegerOption, assertPosition } from '../store/validation.ts';

import type { ProjectionRunner, RebuildOptions, WaitForOptions } from './runner.ts';
import type { ProjectionStatus } from './types.ts';

/**
 * One projection of a runner that runs it only while this process holds its
 * lease (a lock, a lease row): the adapter takes and gives up the lease and
 * keeps these fields; `leasedRunnerFacade` answers the runner's questions
 * from them.
 */
export interface LeasedProjection {
  name: string;
  version: number;
  /** The name of this version's checkpoint. */
  checkpointName: string;
  /** Runs this one projection while the lease is held. */
  runner: ProjectionRunner;
  held: boolean;
  /** While standing by: the saved checkpoint, the head and the live version, as last read. */
  checkpoint: number;
  head: number;
  live: number;
  /** The last error the runner reported (to resume after a passing storage failure). */
  lastError: unknown;
  /** Called when the lease is lost (a rebuild in flight rejects). */
  onLost: Set<() => void>;
}

export interface LeasedProjectionStatus extends ProjectionStatus {
  /**
   * `'held'`: this process runs the projection. `'standby'`: it does not
   * (another process holds the lease, or this one lost it); the state is then
   * `'stopped'`, and `checkpoint` and `head` are the saved checkpoint and the
   * head as last read.
   */
  lease: 'held' | 'standby';
}

export interface LeasedRunnerFacadeOptions {
  leases: ReadonlyMap<string, LeasedProjection>;
  /** Never started: checks the definitions and answers `parked` and `liveVersion`. */
  all: ProjectionRunner;
  loadCheckpoint(checkpointName: string): Promise<number>;
  /** The store's head, for a stand-by's view. */
  headPosition(): Promise<number>;
  /** False once the runner is stopping. */
  running(): boolean;
  /** Told a failed read of a stand-by's view (the runner's `onError`, and its logger). */
  onStandbyError(lease: LeasedProjection, error: unknown): void;
}

/** A failure that trying again may cure: a retryable storage error (a busy file, a lost connection). */
export function isPassingFailure(error: unknown): boolean {
  return isStorageError(error) && error.retryable;
}

/**
 * The questions a leased runner answers the same way on every adapter:
 * `status`, `waitFor` (a stand-by follows the saved checkpoint), `rebuild`
 * (only where the lease is held; rejects when it is lost meanwhile),
 * `resume`, `parked` and `liveVersion`.
 */
export function leasedRunnerFacade(options: LeasedRunnerFacadeOptions): Omit<
  ProjectionRunner,
  'start' | 'stop' | 'status'
> & {
  status(): LeasedProjectionStatus[];
  status(name: string): LeasedProjectionStatus;
  leaseOf(name: string): LeasedProjection;
  /**
   * Reads what a stand-by shows for a projection it does not run: the saved
   * checkpoint, the live version and the head. A failure is told to
   * `onStandbyError` and leaves the last view; the next lease check reads
   * them again.
   */
  refreshStandby(lease: LeasedProjection): Promise<void>;
} {
  const { leases, all } = options;
  const leaseOf = (name: string): LeasedProjection => {
    const lease = leases.get(name);
    if (!lease) throw new ValidationError({ path: 'projection', message: `no projection named '${name}'` });
    return lease;
  };

  const view = (lease: LeasedProjection): LeasedProjectionStatus => {
    const status = lease.runner.status(lease.name);
    if (lease.held) return { ...status, lease: 'held' };
    return {
      ...status,
      state: 'stopped',
      liveVersion: lease.live,
      checkpoint: lease.checkpoint,
      head: lease.head,
      lag: Math.max(0, lease.head - lease.checkpoint),
      lease: 'standby',
    };
  };

  return {
    leaseOf,

    async refreshStandby(lease) {
      try {
        lease.checkpoint = await options.loadCheckpoint(lease.checkpointName);
        lease.live = await all.liveVersion(lease.name);
        lease.head = Math.max(lease.checkpoint, await options.headPosition());
      } catch (error) {
        // The view stays as last read; the next lease check reads it again.
        options.onStandbyError(lease, error);
      }
    },

    status: ((name?: string) => {
      if (name !== undefined) return view(leaseOf(name));
      return [...leases.values()].map(view);
    }) as { (): LeasedProjectionStatus[]; (name: string): LeasedProjectionStatus },

    async waitFor(name: string, position: number, given?: WaitForOptions) {
      const waitOptions = checkWaitForOptions(given) ?? {};
      const lease = leaseOf(name);
      assertPosition(position);
      const timeoutMs = assertIntegerOption(waitOptions?.timeoutMs, 'timeoutMs') ?? 5000;
      const deadline = Date.now() + timeoutMs;
      let pause = 10;
      for (;;) {
        const left = deadline - Date.now();
        if (lease.held) {
          try {
            await lease.runner.waitFor(name, position, { timeoutMs: Math.max(1, left) });
            return;
          } catch (error) {
            // Rejected because the lease was lost meanwhile (not stopped): go on as a stand-by.
            if (!isTimeoutError(error) || lease.held || !options.running() || Date.now() >= deadline) throw error;
          }
          continue;
        }
        // Run by another process: its saved checkpoint tells (unless a newer version is live).
        lease.live = await all.liveVersion(name);
        if (lease.live > lease.version) throw new ProjectionSupersededError(name, lease.version, lease.live);
        const checkpoint = await options.loadCheckpoint(lease.checkpointName);
        lease.checkpoint = checkpoint;
        if (checkpoint >= position) return;
        if (left <= 0) {
          throw new TimeoutError(
            `projection '${name}' had not reached position ${position} after ${timeoutMs} ms (at ${checkpoint}; run by another process)`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
        pause = Math.min(pause * 2, 200);
      }
    },

    async rebuild(name: string, rebuildOptions?: RebuildOptions) {
      checkRebuildOptions(rebuildOptions);
      const lease = leaseOf(name);
      if (!lease.held) {
        throw new ValidationError({
          path: 'projection',
          message: `'${name}' runs in another process (this one stands by): rebuild it there`,
        });
      }
      const rebuilding = lease.runner.rebuild(name, rebuildOptions);
      rebuilding.catch(() => undefined);
      await new Promise<void>((resolve, reject) => {
        const lost = () =>
          reject(
            new StorageError(
              `lost the lease of '${name}' during its rebuild; the process taking it over goes on from the saved checkpoint`,
              { retryable: true },
            ),
          );
        lease.onLost.add(lost);
        rebuilding.then(resolve, reject).finally(() => lease.onLost.delete(lost));
      });
    },

    async resume(name: string) {
      const lease = leaseOf(name);
      if (!lease.held) {
        throw new ValidationError({
          path: 'projection',
          message: `'${name}' runs in another process (this one stands by): resume it there`,
        });
      }
      await lease.runner.resume(name);
    },

    parked: (name?: string) => all.parked(name),

    async liveVersion(name: string) {
      const lease = leaseOf(name);
      lease.live = await all.liveVersion(name);
      return lease.live;
    },
  };
}
