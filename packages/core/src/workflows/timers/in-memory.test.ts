import { getInMemoryEventStore } from '../../store/in-memory.ts';
import { testTimerStoreConformance } from '../../testing/timer-store-conformance.ts';
import { getInMemoryTimerStore } from './in-memory.ts';

testTimerStoreConformance({
  name: 'in-memory',
  createEnvironment: () => {
    const store = getInMemoryEventStore();
    return { store, timers: getInMemoryTimerStore(store), close: () => store.close() };
  },
});
