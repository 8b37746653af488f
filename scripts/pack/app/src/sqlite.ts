import { getSqliteEventStore } from '@factline/sqlite';

// One file (created on first use), or ':memory:' for a store that lives with the process.
const store = getSqliteEventStore({ path: process.argv[2] ?? ':memory:' });
await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }], { expectedVersion: 'no-stream' });
const { events } = await store.readStream('order-1');
console.log(JSON.stringify(events.map((e) => [e.streamId, e.streamVersion, e.type]))); // [["order-1",1,"OrderPlaced"]]
await store.close();
