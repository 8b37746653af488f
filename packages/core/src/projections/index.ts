export {
  createLeaseLoop,
  isPassingFailure,
  type LeasedProjection,
  type LeasedProjectionStatus,
  type LeasedRunnerFacadeOptions,
  type LeaseLoop,
  type LeaseLoopOptions,
  leasedRunnerFacade,
} from './leased-runner.ts';
export {
  createProjectionRunner,
  type ProjectionRunner,
  type ProjectionRunnerOptions,
  type RebuildOptions,
  type WaitForOptions,
} from './runner.ts';
export {
  defineProjection,
  type ParkedEvent,
  type Projection,
  type ProjectionBackend,
  type ProjectionError,
  type ProjectionState,
  type ProjectionStatus,
  type ProjectionVersionRef,
  parseProjectionVersionKey,
  projectionVersionKey,
  type RebuildProgress,
} from './types.ts';
