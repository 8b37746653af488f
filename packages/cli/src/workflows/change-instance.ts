import {
  createWorkflowHandler,
  defineWorkflow,
  type EventStore,
  type RetryOutcome,
  type Workflow,
} from '@factline/core';

/**
 * A stand-in for a workflow the CLI has no definition of, enough for
 * `parked.cancel` (which reads only the instance's status): it decides nothing.
 */
function definitionless(name: string): Workflow<null> {
  const none = '$factline.cli.none';
  return defineWorkflow<null>({
    name,
    inputs: [none],
    start: [none],
    correlate: () => '',
    initialState: () => null,
    evolve: (state) => state,
    decide: () => [],
  });
}

/**
 * Retries a parked instance through the handler's `parked.retry`, as the
 * application would, with its definition (upcasting the inputs when the
 * store was opened with the application's schema registry).
 *
 * @example
 * const outcome = await retryInstance(store, shipping, 'A3'); // 'resumed' | 'parked'
 */
export function retryInstance(
  store: EventStore,
  workflow: Workflow<unknown>,
  instanceId: string,
): Promise<RetryOutcome> {
  return createWorkflowHandler(workflow, { store }).parked.retry(instanceId);
}

/**
 * Cancels an instance through the handler's `parked.cancel`: no definition needed.
 *
 * @example
 * await cancelInstance(store, 'shipping', 'A4', 'duplicate');
 */
export function cancelInstance(
  store: EventStore,
  workflow: string,
  instanceId: string,
  reason?: string,
): Promise<void> {
  return createWorkflowHandler(definitionless(workflow), { store }).parked.cancel(instanceId, reason);
}
