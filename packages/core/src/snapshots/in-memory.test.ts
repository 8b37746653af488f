import { getInMemoryEventStore } from '../store/in-memory.ts';
import { testSnapshotStoreConformance } from '../testing/index.ts';
import { getInMemorySnapshotStore } from './in-memory.ts';

testSnapshotStoreConformance({
  name: 'in-memory',
  createEnvironment: () => {
    const snapshots = getInMemorySnapshotStore();
    const events = getInMemoryEventStore();
    return { snapshots, events, close: () => events.close() };
  },
});
