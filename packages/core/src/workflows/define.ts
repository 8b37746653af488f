import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { checkOptions, type OptionSpecOf } from '../options/check-options.ts';
import type { Event } from '../store/types.ts';
import type { CancelOutput, CompleteOutput, ScheduleOutput, SendOutput, Workflow } from './types.ts';

const workflowSpec: OptionSpecOf<Workflow<unknown>> = {
  name: (value) =>
    typeof value === 'string' && /^[A-Za-z0-9_.]{1,100}$/.test(value)
      ? undefined
      : 'must be 1 to 100 letters, digits, _ or . (it is the stream category of the instances)',
  inputs: 'array',
  start: 'array',
  correlate: 'function',
  initialState: 'function',
  evolve: 'function',
  decide: 'function',
};

/**
 * Checks a workflow definition and returns it, typed by its state and its
 * input and output unions.
 *
 * @example
 * const checkout = defineWorkflow<CheckoutState, CheckoutInput, CheckoutOutput>({
 *   name: 'checkout',
 *   inputs: ['OrderPlaced', 'PaymentTimedOut'],
 *   start: ['OrderPlaced'],
 *   correlate: (input) => input.data.orderId,
 *   initialState: () => ({ status: 'new' }),
 *   evolve: (state, recorded) => (recorded.kind === 'input' ? { status: 'placed' } : state),
 *   decide: (input) => [send({ type: 'ChargeCard', data: input.data })],
 * });
 */
export function defineWorkflow<State, In extends Event = Event, Out extends Event = Event>(
  workflow: Workflow<State, In, Out>,
): Workflow<State, In, Out> {
  checkOptions(workflow, workflowSpec, 'defineWorkflow', {
    required: Object.keys(workflowSpec),
    optional: false,
  });
  const issues: ValidationIssue[] = [];
  for (const key of ['inputs', 'start'] as const) {
    workflow[key].forEach((type, i) => {
      if (typeof type !== 'string' || type.length === 0) {
        issues.push({ path: `defineWorkflow.${key}[${i}]`, message: 'must be a non-empty string' });
      }
    });
  }
  for (const type of workflow.start) {
    if (!workflow.inputs.includes(type)) {
      issues.push({ path: 'defineWorkflow.start', message: `'${type}' is not one of the inputs` });
    }
  }
  if (workflow.start.length === 0) issues.push({ path: 'defineWorkflow.start', message: 'must name an input type' });
  if (issues.length > 0) throw new ValidationError(issues);
  return workflow;
}

/**
 * An output: send a message (an event, or a command another service handles
 * with `handleCommand`). Its id is derived from the instance's record, so a
 * decision delivered twice carries one message id.
 *
 * @example
 * send({ type: 'ReserveStock', data: { orderId, items } }, { topic: 'inventory' });
 */
export function send<Out extends Event>(
  message: Pick<Out, 'type' | 'data'> & { key?: string },
  options: { topic?: string } = {},
): SendOutput<Out> {
  return options.topic === undefined ? { kind: 'send', message } : { kind: 'send', message, topic: options.topic };
}

/**
 * An output: a durable timer. At its due time `message` comes back to the
 * instance as an input (unless cancelled, replaced or the instance completed).
 *
 * @example
 * schedule({ token: 'payment', afterMs: 15 * 60_000, message: { type: 'PaymentTimedOut', data: { orderId } } });
 */
export function schedule<In extends Event>(timer: Omit<ScheduleOutput<In>, 'kind'>): ScheduleOutput<In> {
  return { kind: 'schedule', ...timer };
}

/**
 * An output: cancel the pending timer of `token`.
 *
 * @example
 * cancelTimer('payment');
 */
export function cancelTimer(token: string): CancelOutput {
  return { kind: 'cancel', token };
}

/**
 * An output: the instance is complete.
 *
 * @example
 * return [send({ type: 'OrderShipped', data: { orderId } }), complete()];
 */
export function complete(): CompleteOutput {
  return { kind: 'complete' };
}
