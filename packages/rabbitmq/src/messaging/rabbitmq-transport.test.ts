import { after } from 'node:test';
import { backendHooks, testTransportConformance } from '@factline/core/testing';
import { startPrivateNode } from '../fixtures/private-node.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// The transport suite runs once: on a private node when this machine can start one (its restart cases
// stop and start that node's broker), else on the shared broker with the restart cases skipped.
const node = await startPrivateNode();
const privateUrl = 'reason' in node ? undefined : node.url;
if ('reason' in node) console.log(`# no private RabbitMQ node (${node.reason}): the restart cases skip`);
const skip = privateUrl ? false : await rabbitUnavailable();
const application = testApplication('conf');
const created: RabbitTransport[] = [];

after(async () => {
  if ('reason' in node) await removeTopology(created);
  else await node.stop();
});

testTransportConformance({
  name: privateUrl ? 'rabbitmq (private node)' : 'rabbitmq',
  skip,
  async createTransport({ onError }) {
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    const transport = await getRabbitTransport({
      url: privateUrl ?? amqpUrl,
      application,
      partitions: 1,
      reconnectMaxMs: 500,
      onError,
    });
    created.push(transport);
    return transport;
  },
  ...('reason' in node ? {} : backendHooks(node.stopApp, node.startApp)),
});
