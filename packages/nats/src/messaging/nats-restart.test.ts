import { after, describe, it } from 'node:test';
import { brokerRestartRun } from '../../../sqlite/src/outbox/fixtures/broker-restart.ts';
import { showLogOnFailure, startPrivateServer } from '../fixtures/private-server.ts';
import { testApplication } from '../fixtures/server.ts';
import { getNatsTransport } from './nats-transport.ts';

// A server restart mid-run, on a private nats-server (its own port and store directory): a producer
// writing to the SQLite outbox, its relay publishing to JetStream, three consumer processes; the server
// stops and starts again (the scenario: broker-restart.ts).
const server = await startPrivateServer({ jetstream: true });
showLogOnFailure(server);
const skip = 'reason' in server ? `no private nats-server: ${server.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const restart = brokerRestartRun('nats');

after(async () => {
  await restart.cleanUp();
  if (!('reason' in server)) await server.stop();
});

describe('nats: the server restarts mid-run', { skip }, () => {
  it('outbox relay and three consumer processes ride it out: every message applied once, per-key order held', async () => {
    if ('reason' in server) return;
    const application = testApplication('restart');
    await restart.run({
      url: server.url,
      application,
      childScript: new URL('./fixtures/consumer-child.ts', import.meta.url).pathname,
      openTransport: async (partitions) => {
        const transport = await getNatsTransport({ url: server.url, application, partitions, reconnectWaitMs: 100 });
        await transport.declareSubscription('counts', 'counter');
        return transport;
      },
      stopBroker: () => server.stopServer(),
      startBroker: () => server.startServer(),
    });
  });
});
