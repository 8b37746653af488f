import { after, before, test } from 'node:test';
import { getInMemoryDeadLetterStore } from '@factline/core';
import { checkConsumerLag } from '../../../core/src/tracing/fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('metrics');
let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(async () => {
  await sdk.shutdown();
  if (!skip) await removeStreams([application]);
});

test('the consumer reports its group’s backlog on the NATS transport, read from its JetStream consumers', {
  skip,
}, async () => {
  const transport = await getNatsTransport({
    url: natsUrl,
    application,
    partitions: 2,
    deadLetters: getInMemoryDeadLetterStore(),
  });
  try {
    await checkConsumerLag(sdk, transport, 'bills');
  } finally {
    await transport.close();
  }
});
