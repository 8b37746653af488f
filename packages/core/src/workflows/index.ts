export { type CompletedStep, compensations, stepCompleted } from './compensation.ts';
export { cancelTimer, complete, defineWorkflow, schedule, send } from './define.ts';
export { derivedId } from './derived-id.ts';
export {
  createWorkflowHandler,
  type TimerFiring,
  type WorkflowHandler,
  type WorkflowOutcome,
  type WorkflowStats,
} from './handler.ts';
export type { WorkflowHandlerOptions } from './handler-options.ts';
export { type InstanceStatus, instanceStreamId, loadInstance, type WorkflowInstance } from './instance.ts';
export type { ParkedInstance, ParkedInstances, RetryOutcome } from './parked.ts';
export { workflowEventTypes } from './records.ts';
export { defineWorkflowRelay, messageFromSent, type WorkflowRelayOptions } from './relay.ts';
export type { InstanceSnapshotData, WorkflowSnapshots } from './snapshots.ts';
export { type Clock, systemClock } from './timers/clock.ts';
export { getInMemoryTimerStore } from './timers/in-memory.ts';
export {
  createWorkflowTimers,
  type FireReport,
  type WorkflowTimers,
  type WorkflowTimersOptions,
} from './timers/poller.ts';
export type { PendingTimer, TimerStore } from './timers/types.ts';
export type {
  CancelOutput,
  CompleteOutput,
  ScheduleOutput,
  SendOutput,
  Workflow,
  WorkflowInput,
  WorkflowInputOf,
  WorkflowOutput,
  WorkflowRecord,
} from './types.ts';
