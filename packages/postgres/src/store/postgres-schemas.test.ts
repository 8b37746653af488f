import { testSchemaStoreConformance } from '@factline/core/testing';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from './postgres-event-store.ts';

const skip = await postgresUnavailable();
const schema = testSchema('schemas');

// Two stores on one schema: the raw one writes old events, the other reads them through the registry.
testSchemaStoreConformance({
  name: 'postgres',
  skip,
  openStores: async (schemas) => ({
    raw: await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 }),
    store: await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2, schemas }),
  }),
  teardown: () => dropSchema(schema),
});
