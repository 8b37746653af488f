import assert from 'node:assert/strict';
import type { Decider } from '../commands/decider.ts';
import { foldEvents } from '../commands/decider.ts';
import type { Event } from '../store/types.ts';

export interface DeciderThen<State, E extends Event> {
  /** Asserts `decide` returned exactly these events (type, data, metadata). */
  thenEmits(expected: readonly E[]): void;
  /** Asserts the state after applying the new events. */
  thenState(expected: State | ((state: State) => void)): void;
  /** Asserts `decide` threw; pass an error class, a predicate or a message pattern. */
  thenThrows(expected?: (new (...args: never[]) => Error) | ((error: unknown) => boolean) | RegExp): void;
}

/**
 * Given/when/then for deciders, runner-agnostic (throws `AssertionError`).
 *
 * @example
 * deciderSpecification(orderDecider)
 *   .given([{ type: 'OrderPlaced', data: { items: 2 } }])
 *   .when({ type: 'CancelOrder' })
 *   .thenEmits([{ type: 'OrderCancelled', data: {} }]);
 */
export function deciderSpecification<State, Command, E extends Event>(decider: Decider<State, Command, E>) {
  return {
    given(past: readonly E[] = []) {
      return {
        when(command: Command): DeciderThen<State, E> {
          const run = () => {
            const state = foldEvents(decider, past);
            const decided = decider.decide(command, state);
            const events = (Array.isArray(decided) ? decided : [decided]) as E[];
            return { state, events };
          };
          return {
            thenEmits(expected) {
              assert.deepStrictEqual(run().events, expected);
            },
            thenState(expected) {
              const { state, events } = run();
              const next = foldEvents(decider, events, state);
              if (typeof expected === 'function') (expected as (s: State) => void)(next);
              else assert.deepStrictEqual(next, expected);
            },
            thenThrows(expected) {
              if (expected === undefined) assert.throws(run);
              else if (expected instanceof RegExp) assert.throws(run, expected);
              else if (expected.prototype instanceof Error || expected === Error) {
                assert.throws(run, expected as new (...args: never[]) => Error);
              } else {
                assert.throws(run, (error: unknown) => (expected as (e: unknown) => boolean)(error));
              }
            },
          };
        },
      };
    },
  };
}
