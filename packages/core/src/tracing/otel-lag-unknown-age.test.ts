import { after, before, describe, it } from 'node:test';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import type { Transport } from '../messaging/transport.ts';
import { checkConsumerLag } from './fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from './fixtures/otel-sdk.ts';

// A file of its own: the reader keeps reporting every attribute set it has seen, an age point of another test too.
let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

describe('consumer lag metrics with an unknown age', () => {
  it('reports the messages waiting and leaves the age point out while they wait', async () => {
    const inMemory = getInMemoryTransport();
    // The in-memory transport's count, its age withheld as the RabbitMQ transport withholds it.
    const transport: Transport = {
      ...inMemory,
      async backlog(topic, group) {
        const { messages } = (await inMemory.backlog?.(topic, group)) ?? { messages: 0 };
        return { messages, oldestAt: undefined, ...(messages > 0 ? { ageUnknown: true } : {}) };
      },
    };
    try {
      await checkConsumerLag(sdk, transport, 'bills', { age: 'unknown' });
    } finally {
      await transport.close();
    }
  });
});
