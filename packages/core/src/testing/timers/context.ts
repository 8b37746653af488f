import type { Event, EventStore } from '../../store/types.ts';
import { cancelTimer, complete, defineWorkflow, schedule } from '../../workflows/define.ts';
import { createWorkflowHandler, type WorkflowHandler } from '../../workflows/handler.ts';
import type { TimerStore } from '../../workflows/timers/types.ts';
import type { Workflow } from '../../workflows/types.ts';
import { uniqueCategory } from '../conformance/context.ts';

/** What a timer conformance case runs against: an event store and the timer store kept from it. */
export interface TimerEnvironment {
  store: EventStore;
  timers: TimerStore;
  /**
   * Closes both and opens them again on the same backend, as a restarted
   * process does. Without it the cases that need one are skipped with the reason.
   */
  reopen?: () => Promise<{ store: EventStore; timers: TimerStore }>;
  /** Releases the environment (connections, files); called when the case ends. */
  close(): Promise<void> | void;
}

export interface TimerCaseContext extends TimerEnvironment {
  /** A workflow of its own for this case (a unique name), with its handler on `store`, at the time `now`. */
  workflow(now?: () => number): { definition: Workflow<unknown, TimerInput>; handler: WorkflowHandler };
}

export interface TimerConformanceCase {
  name: string;
  skip?: (environment: TimerEnvironment) => string | undefined;
  run(context: TimerCaseContext): Promise<void>;
}

/** The case workflow's inputs: `Set` schedules (or replaces) the timer of a token, `Cancel` cancels it, `End` completes. */
export type TimerInput =
  | Event<'Set', { id: string; token: string; at: number }>
  | Event<'Cancel', { id: string; token: string }>
  | Event<'End', { id: string }>
  | Event<'Due', { id: string; token: string }>;

export function timerWorkflow(store: EventStore, now: () => number = Date.now) {
  const definition = defineWorkflow<unknown, TimerInput>({
    name: uniqueCategory('timers'),
    inputs: ['Set', 'Cancel', 'End', 'Due'],
    start: ['Set'],
    correlate: (input) => input.data.id,
    initialState: () => null,
    evolve: (state) => state,
    decide: (input) => {
      switch (input.type) {
        case 'Set':
          return schedule({
            token: input.data.token,
            at: new Date(input.data.at),
            message: { type: 'Due', data: { id: input.data.id, token: input.data.token } },
          });
        case 'Cancel':
          return cancelTimer(input.data.token);
        case 'End':
          return complete();
        case 'Due':
          return [];
      }
    },
  });
  return { definition, handler: createWorkflowHandler(definition, { store, now }) };
}
