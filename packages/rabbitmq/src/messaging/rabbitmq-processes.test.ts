import { after, describe, it } from 'node:test';
import { killedConsumerRun } from '../../../sqlite/src/messaging/fixtures/consumer-kill.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// The scenario: consumer-kill.ts (three consumer processes, one SIGKILLed mid-run).
const skip = await rabbitUnavailable();
const processes = killedConsumerRun('rabbit');
const created: RabbitTransport[] = [];

after(async () => {
  await processes.cleanUp();
  await Promise.all(created.map((t) => t.close()));
  await removeTopology(created);
});

describe('rabbitmq: consumer processes of one group', { skip }, () => {
  it('three processes, one SIGKILLed while it holds unacknowledged messages: the others get them; every message applied once, per-key order held', async () => {
    const application = testApplication('kill');
    const partitions = 4;
    const publisher = await getRabbitTransport({ url: amqpUrl, application, partitions });
    created.push(publisher);
    await publisher.declareSubscription('counts', 'counter');
    await processes.run({
      url: amqpUrl,
      application,
      partitions,
      childScript: new URL('./fixtures/consumer-child.ts', import.meta.url).pathname,
      publisher,
    });
  });
});
