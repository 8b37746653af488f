import { testEventStoreConformance } from '@factline/core/testing';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from './postgres-event-store.ts';

const skip = await postgresUnavailable();
const schema = testSchema('conformance');

testEventStoreConformance({
  name: 'postgres',
  skip,
  createStore: (options) => getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4, ...options }),
  teardown: () => dropSchema(schema),
});
