import { getInMemoryEventStore } from '../index.ts';
import { testEventStoreConformance } from '../testing/index.ts';

testEventStoreConformance({ name: 'in-memory', createStore: (options) => getInMemoryEventStore(options) });
