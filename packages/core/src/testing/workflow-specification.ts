import assert from 'node:assert/strict';
import type { Event } from '../store/types.ts';
import type { Workflow, WorkflowInput, WorkflowInputOf, WorkflowOutput } from '../workflows/types.ts';

export interface WorkflowThen<State, In extends Event, Out extends Event> {
  /** Asserts `decide` returned exactly these outputs. */
  thenOutputs(expected: readonly WorkflowOutput<Out, In>[]): void;
  /** Asserts the state after the input and the messages it sent. */
  thenState(expected: State | ((state: State) => void)): void;
  /** Asserts `decide` threw; pass a predicate or a message pattern. */
  thenThrows(expected?: ((error: unknown) => boolean) | RegExp): void;
}

type GivenInput<In extends Event> = Pick<In, 'type' | 'data'> & { id?: string };

/**
 * Given/when/then on a workflow's pure functions (throws `AssertionError`):
 * `given` inputs are decided and folded in order, as the instance would
 * have recorded them, then `when` is decided on the resulting state.
 *
 * @example
 * workflowSpecification(checkout)
 *   .given([{ type: 'OrderPlaced', data: { orderId: 'o1', amount: 30 } }])
 *   .when({ type: 'PaymentFailed', data: { orderId: 'o1' } })
 *   .thenOutputs([send({ type: 'CancelOrder', data: { orderId: 'o1' } }), complete()]);
 */
export function workflowSpecification<State, In extends Event, Out extends Event>(workflow: Workflow<State, In, Out>) {
  let sequence = 0;
  const asInput = (given: GivenInput<In>): WorkflowInputOf<In> =>
    ({ id: given.id ?? `input-${++sequence}`, type: given.type, data: given.data, metadata: {} }) as WorkflowInput &
      WorkflowInputOf<In>;
  const apply = (state: State, input: WorkflowInputOf<In>, outputs: readonly WorkflowOutput<Out, In>[]) => {
    let next = workflow.evolve(state, { kind: 'input', message: input });
    for (const output of outputs) {
      if (output.kind === 'send') next = workflow.evolve(next, { kind: 'sent', message: output.message as Out });
    }
    return next;
  };
  const decide = (input: WorkflowInputOf<In>, state: State) => {
    const decided = workflow.decide(input, state);
    return (Array.isArray(decided) ? decided : [decided]) as WorkflowOutput<Out, In>[];
  };
  return {
    given(past: readonly GivenInput<In>[] = []) {
      return {
        when(given: GivenInput<In>): WorkflowThen<State, In, Out> {
          const run = () => {
            let state = workflow.initialState();
            for (const item of past) {
              const input = asInput(item);
              state = apply(state, input, decide(input, state));
            }
            const input = asInput(given);
            return { state, input, outputs: decide(input, state) };
          };
          return {
            thenOutputs(expected) {
              assert.deepStrictEqual(run().outputs, expected);
            },
            thenState(expected) {
              const { state, input, outputs } = run();
              const next = apply(state, input, outputs);
              if (typeof expected === 'function') (expected as (s: State) => void)(next);
              else assert.deepStrictEqual(next, expected);
            },
            thenThrows(expected) {
              if (expected === undefined) assert.throws(run);
              else if (expected instanceof RegExp) assert.throws(run, expected);
              else assert.throws(run, (error: unknown) => expected(error));
            },
          };
        },
      };
    },
  };
}
