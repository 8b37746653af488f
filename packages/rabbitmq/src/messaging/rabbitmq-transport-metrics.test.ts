import { after, before, test } from 'node:test';
import { getInMemoryDeadLetterStore } from '@factline/core';
import { checkConsumerLag } from '../../../core/src/tracing/fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const application = testApplication('metrics');
let transport: RabbitTransport | undefined;
let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(async () => {
  await sdk.shutdown();
  if (!skip) await removeTopology([transport]);
});

test('the consumer reports its group’s backlog on the RabbitMQ transport, without an age', { skip }, async () => {
  transport = await getRabbitTransport({
    url: amqpUrl,
    application,
    partitions: 2,
    deadLetters: getInMemoryDeadLetterStore(),
  });
  try {
    await checkConsumerLag(sdk, transport, 'bills', { age: 'unknown' });
  } finally {
    await transport.close();
  }
});
