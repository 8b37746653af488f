import type { Event } from '../store/types.ts';

/**
 * A decider: the pure core of a command handler. State is rebuilt by folding
 * `evolve` over the stream's events; `decide` turns a command and the current
 * state into new events (or throws a domain error).
 *
 * @example
 * const counter: Decider<number, { add: number }, Event<'Added', { n: number }>> = {
 *   initialState: () => 0,
 *   evolve: (total, event) => total + event.data.n,
 *   decide: (command) => [{ type: 'Added', data: { n: command.add } }],
 * };
 */
export interface Decider<State, Command, E extends Event = Event> {
  initialState: () => State;
  evolve: (state: State, event: E) => State;
  decide: (command: Command, state: State) => E | readonly E[];
}

/** Folds events into state with a decider's `evolve`. */
export function foldEvents<State, E extends Event>(
  decider: Pick<Decider<State, unknown, E>, 'initialState' | 'evolve'>,
  events: Iterable<E>,
  state: State = decider.initialState(),
): State {
  let current = state;
  for (const event of events) current = decider.evolve(current, event);
  return current;
}

/** The class-aggregate shape: `apply` mutates the aggregate's own state. */
export interface Aggregate<E extends Event = Event> {
  apply(event: E): void;
}

/**
 * Rebuilds an aggregate by applying its past events in order.
 *
 * @example
 * const order = rehydrate(() => new Order(), (await store.readStream('order-1')).events as OrderEvent[]);
 */
export function rehydrate<A extends Aggregate<E>, E extends Event>(create: () => A, events: Iterable<E>): A {
  const aggregate = create();
  for (const event of events) aggregate.apply(event);
  return aggregate;
}

/**
 * Wraps a class aggregate as a decider, so `handleCommand` can drive it:
 * `execute` calls one of the aggregate's methods, which returns new events
 * without applying them.
 *
 * @example
 * const orderDecider = aggregateDecider(() => new Order(), (order, command: PlaceOrder) => order.place(command.items));
 */
export function aggregateDecider<A extends Aggregate<E>, Command, E extends Event>(
  create: () => A,
  execute: (aggregate: A, command: Command) => E | readonly E[],
): Decider<A, Command, E> {
  return {
    initialState: create,
    evolve: (aggregate, event) => {
      aggregate.apply(event);
      return aggregate;
    },
    decide: (command, aggregate) => execute(aggregate, command),
  };
}
