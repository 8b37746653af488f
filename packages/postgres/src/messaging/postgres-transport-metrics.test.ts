import { after, before, test } from 'node:test';
import { checkConsumerLag } from '../../../core/src/tracing/fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresTransport } from './postgres-transport.ts';

const unavailable = await postgresUnavailable();
const schema = testSchema('transport_metrics');
let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(async () => {
  await sdk.shutdown();
  if (!unavailable) await dropSchema(schema);
});

test('the consumer reports its group’s backlog on the PostgreSQL transport, read from the queue table', {
  skip: unavailable,
}, async () => {
  const transport = await getPostgresTransport({ connectionString: postgresUrl, schema, pollIntervalMs: 10 });
  try {
    await checkConsumerLag(sdk, transport, 'bills');
  } finally {
    await transport.close();
  }
});
