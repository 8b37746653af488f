import { after, describe, it } from 'node:test';
import { brokerRestartRun } from '../../../sqlite/src/outbox/fixtures/broker-restart.ts';
import { startPrivateNode } from '../fixtures/private-node.ts';
import { testApplication } from '../fixtures/server.ts';
import { getRabbitTransport } from './rabbitmq-transport.ts';

// A broker restart mid-run, on a private node: a producer writing to the SQLite outbox, its relay
// publishing to RabbitMQ, three consumer processes; the broker application stops and starts again
// (the scenario: broker-restart.ts).
const node = await startPrivateNode();
const skip = 'reason' in node ? `no private RabbitMQ node: ${node.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const restart = brokerRestartRun('rabbit');

after(async () => {
  await restart.cleanUp();
  if (!('reason' in node)) await node.stop();
});

describe('rabbitmq: the broker restarts mid-run', { skip }, () => {
  it('outbox relay and three consumer processes ride it out: every message applied once, per-key order held', async () => {
    if ('reason' in node) return;
    const application = testApplication('restart');
    await restart.run({
      url: node.url,
      application,
      childScript: new URL('./fixtures/consumer-child.ts', import.meta.url).pathname,
      openTransport: (partitions) =>
        getRabbitTransport({ url: node.url, application, partitions, reconnectMinMs: 100, reconnectMaxMs: 500 }),
      stopBroker: () => node.stopApp(),
      startBroker: () => node.startApp(),
    });
  });
});
