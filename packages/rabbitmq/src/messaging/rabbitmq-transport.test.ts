import { testTransportConformance } from '@factline/core/testing';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const application = testApplication('conf');
const created: RabbitTransport[] = [];

testTransportConformance({
  name: 'rabbitmq',
  skip,
  async createTransport() {
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    const transport = await getRabbitTransport({ url: amqpUrl, application, partitions: 1 });
    created.push(transport);
    return transport;
  },
  teardown: () => removeTopology(created),
});
