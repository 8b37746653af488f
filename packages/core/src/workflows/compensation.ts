import type { Event } from '../store/types.ts';
import type { SendOutput } from './types.ts';

/** A step the workflow completed, with the message that undoes it. */
export interface CompletedStep<C extends Event = Event> {
  step: string;
  compensation: SendOutput<C>;
}

/**
 * Records a completed step in the workflow's state (returns a new list; keep
 * it in the state through `evolve`). The same step recorded twice is kept once.
 *
 * @example
 * evolve: (state, recorded) =>
 *   recorded.kind === 'input' && recorded.message.type === 'StockReserved'
 *     ? { ...state, steps: stepCompleted(state.steps, 'stock', send({ type: 'ReleaseStock', data })) }
 *     : state,
 */
export function stepCompleted<C extends Event>(
  steps: readonly CompletedStep<C>[],
  step: string,
  compensation: SendOutput<C>,
): CompletedStep<C>[] {
  if (steps.some((done) => done.step === step)) return [...steps];
  return [...steps, { step, compensation }];
}

/**
 * The compensations of the completed steps, last step first, as explicit
 * messages to send (each a command its service handles): return them from
 * `decide` when a later step failed.
 *
 * @example
 * if (input.type === 'PaymentFailed') return [...compensations(state.steps), send(cancelOrder), complete()];
 */
export function compensations<C extends Event>(steps: readonly CompletedStep<C>[]): SendOutput<C>[] {
  return [...steps].reverse().map((done) => done.compensation);
}
