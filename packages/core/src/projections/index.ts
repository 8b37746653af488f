export type { LeasedProjection, LeasedProjectionStatus } from './leased-runner.ts';
export type { ProjectionRunner, ProjectionRunnerOptions, RebuildOptions, WaitForOptions } from './runner.ts';
export {
  defineProjection,
  type ParkedEvent,
  type Projection,
  type ProjectionError,
  type ProjectionState,
  type ProjectionStatus,
  type RebuildProgress,
} from './types.ts';
