import { getPostgresEventStore } from '@factline/postgres';

// Creates the schema and its tables on first use; several processes may share it.
const store = await getPostgresEventStore({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  schema: process.env.FACTLINE_SCHEMA ?? 'factline',
});
const { position } = await store.append('order-1', [{ type: 'OrderPlaced', data: { total: 30 } }]);
const { events } = await store.readStream('order-1');
console.log(JSON.stringify({ position, types: events.map((e) => e.type) }));
await store.close();
