import { StorageError } from '../errors/index.ts';
import type { LeaseGuard } from '../lease/lease-guard.ts';
import { createLeasedLoop, type LeasedWork } from '../lease/leased-loop.ts';
import type { LeaseProvider } from '../lease/types.ts';
import { log } from '../logging/logger.ts';
import { pickProjectionRunnerOptions } from '../options/runner-options.ts';
import {
  isPassingFailure,
  type LeasedProjection,
  type LeasedProjectionStatus,
  leasedRunnerFacade,
} from './leased-runner.ts';
import { createProjectionRunner, type ProjectionRunner, type ProjectionRunnerOptions } from './runner.ts';
import { type Projection, type ProjectionBackend, projectionVersionKey } from './types.ts';

/** The lease name of a projection version: `projection:<name>` (version 1) or `projection:<name>@v<version>`. */
export function projectionLeaseName(projection: string, version = 1): string {
  return `projection:${projectionVersionKey(projection, version)}`;
}

export interface LeasedProjectionsSettings<Tx> {
  backend: ProjectionBackend<Tx>;
  projections: readonly Projection<Tx>[];
  /** The runner's options (the adapter checked them; only the runner's own are used). */
  options: ProjectionRunnerOptions;
  /** The leases, one per projection version (named by `projectionLeaseName`). */
  leases: LeaseProvider;
  /** How often leases are renewed (held) or tried (standing by), ms. */
  checkMs: number;
  /** The store's head, for a stand-by's view. */
  headPosition(): Promise<number>;
  /** Called when this process takes (`'held'`) or gives up or loses (`'standby'`) a projection's lease. */
  onLeaseChange?: (projection: string, lease: 'held' | 'standby') => void;
  /** Runs on stop, after every lease was given up: closes the leases and what the backend opened. */
  close?(): Promise<void>;
}

/** A projection runner whose projections each run in one process at a time. */
export interface LeasedProjectionRunner extends ProjectionRunner {
  status(): LeasedProjectionStatus[];
  status(name: string): LeasedProjectionStatus;
}

/**
 * Runs each projection only while this process holds its lease, on any
 * backend: a stand-by follows the saved checkpoint (`status`, `waitFor`), a
 * holder runs the core runner and checks its lease before every commit (a
 * commit after the lease was lost is refused, as if the checkpoint had moved),
 * and a lease that is lost stops its projection at once; a stand-by takes over
 * from the saved checkpoint. Even if two processes ever ran a projection at
 * once, the checkpoint check of every commit keeps each event applied once.
 */
export function createLeasedProjections<Tx>(settings: LeasedProjectionsSettings<Tx>): LeasedProjectionRunner {
  const { backend, projections, options } = settings;
  const runnerOptions = pickProjectionRunnerOptions(options);
  // Checks the definitions together (names, duplicates) the way the runner does; never started, it
  // answers `parked` and `liveVersion`.
  const all = createProjectionRunner(backend, projections, runnerOptions);

  const leases = new Map<string, LeasedProjection>();
  const guards = new Map<LeasedProjection, LeaseGuard>();
  const works: LeasedWork[] = [];
  const workNames = new Map<LeasedWork, LeasedProjection>();

  /**
   * A batch commits only while the lease holds (renewed here when due: a
   * runner catching up on a synchronous database never yields to the lease
   * timer). A lease found lost is refused as if the checkpoint had moved (the
   * loss stops the runner); a runner that somehow goes on without the lease
   * gets errors, never a commit.
   */
  const refusal = async (projection: LeasedProjection): Promise<false | undefined> => {
    const guard = guards.get(projection);
    if (!projection.held || !guard) {
      throw new StorageError(`the lease of projection '${projection.name}' is not held by this process`, {
        retryable: true,
      });
    }
    return (await guard.holds()) ? undefined : false;
  };
  const guardedBackend = (projection: LeasedProjection): ProjectionBackend<Tx> => ({
    ...backend,
    commit: async (batch) => (await refusal(projection)) ?? backend.commit(batch),
    park: async (name, expected, event, error, version) =>
      (await refusal(projection)) ?? backend.park(name, expected, event, error, version),
  });

  /** Tells `onError` (its own failure changes nothing) and logs at `warn` what failed outside a batch. */
  const tell = (projection: LeasedProjection, error: unknown, what: string, fields: { stage?: string } = {}) => {
    try {
      options.onError?.(projection.name, error, projection.checkpoint);
    } catch {
      // The hook's own failure changes nothing.
    }
    log(
      options.logger,
      'warn',
      { projection: projection.name, ...fields, position: projection.checkpoint, err: error },
      `projection ${projection.name}: ${what}`,
    );
  };

  const facade = leasedRunnerFacade({
    leases,
    all,
    loadCheckpoint: (checkpointName) => backend.loadCheckpoint(checkpointName),
    headPosition: () => settings.headPosition(),
    running: () => loop.running(),
    onStandbyError: (projection, error) =>
      tell(projection, error, 'reading its stand-by view failed', { stage: 'standby' }),
  });

  const changed = (projection: LeasedProjection, lease: 'held' | 'standby') => {
    try {
      settings.onLeaseChange?.(projection.name, lease);
    } catch {
      // The callback's own failure changes nothing.
    }
  };

  for (const definition of projections) {
    const version = definition.version ?? 1;
    const projection: LeasedProjection = {
      name: definition.name,
      version,
      checkpointName: projectionVersionKey(definition.name, version),
      runner: undefined as unknown as ProjectionRunner,
      held: false,
      checkpoint: 0,
      head: 0,
      live: 1,
      lastError: undefined,
      onLost: new Set(),
    };
    projection.runner = createProjectionRunner(guardedBackend(projection), [definition], {
      ...runnerOptions,
      onError: (name, error, position) => {
        projection.lastError = error;
        options.onError?.(name, error, position);
      },
    });
    leases.set(definition.name, projection);
    /** Told `onLeaseChange` it is held here (a take whose start failed is never told). */
    let announced = false;
    const work: LeasedWork = {
      lease: settings.leases.lease(projectionLeaseName(definition.name, version)),
      async start(guard) {
        guards.set(projection, guard);
        projection.held = true;
        projection.lastError = undefined;
        await projection.runner.start();
        announced = true;
        changed(projection, 'held');
      },
      async stop(reason) {
        projection.held = false;
        guards.delete(projection);
        // A rebuild in flight rejects as lost rather than as stopped.
        if (reason === 'lost') for (const onLost of [...projection.onLost]) onLost();
        await projection.runner.stop();
        const status = projection.runner.status(projection.name);
        projection.checkpoint = status.checkpoint;
        projection.head = status.head;
        if (announced) {
          announced = false;
          changed(projection, 'standby');
        }
      },
      async whileHeld() {
        if (projection.runner.status(projection.name).state === 'failed' && isPassingFailure(projection.lastError)) {
          // Failed on a busy file or a lost connection, not on the handler: go on.
          await projection.runner.resume(projection.name);
        }
      },
      whileStandby: () => facade.refreshStandby(projection),
    };
    works.push(work);
    workNames.set(work, projection);
  }

  const loop = createLeasedLoop(works, {
    checkMs: settings.checkMs,
    onError: (work, error) => tell(workNames.get(work) as LeasedProjection, error, 'its lease loop failed'),
    close: settings.close,
  });

  return {
    start: () => loop.start(),
    stop: () => loop.stop(),
    status: facade.status as LeasedProjectionRunner['status'],
    waitFor: facade.waitFor,
    rebuild: facade.rebuild,
    resume: facade.resume,
    parked: facade.parked,
    liveVersion: facade.liveVersion,
  };
}
