import { type Decider, type Event, getInMemoryEventStore, handleCommand } from '@factline/core';

type CounterEvent = Event<'Incremented', { by: number }>;
type CounterCommand = { type: 'Increment'; by: number };

const counter: Decider<{ total: number }, CounterCommand, CounterEvent> = {
  initialState: () => ({ total: 0 }),
  evolve: (state, event) => ({ total: state.total + event.data.by }),
  decide: (command) => [{ type: 'Incremented', data: { by: command.by } }],
};

const store = getInMemoryEventStore();
await handleCommand(store, 'counter-1', { type: 'Increment', by: 2 }, counter);
const { state, version } = await handleCommand(store, 'counter-1', { type: 'Increment', by: 3 }, counter);
console.log(JSON.stringify({ state, version })); // {"state":{"total":5},"version":2}
