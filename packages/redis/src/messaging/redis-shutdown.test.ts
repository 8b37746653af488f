import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Consumer, createConsumer, createMessage, isFactlineError } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { type PrivateServer, startPrivateServer } from '../fixtures/private-server.ts';
import { testApplication } from '../fixtures/server.ts';
import { getRedisInbox } from './redis-inbox.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// Redis gone while a consumer runs (a private server, stopped for good): every part still stops, in either
// order, within its bounds: the consumer within its drain time plus node-redis's 5 s deadline for a command
// waiting to be sent, the transport and the inbox at once once they saw the drop (a connection that is down
// has nothing to finish).
const probe = await startPrivateServer();
const skip = 'reason' in probe ? probe.reason : false;
if (!('reason' in probe)) await probe.stop();

const DRAIN_MS = 1000;
const COMMAND_DEADLINE_MS = 5000;

/** A transport, an inbox and a consumer on `server`, which handled 10 messages and holds the 11th in its handler. */
async function runningConsumer(server: PrivateServer) {
  const application = testApplication('shutdown');
  const stages: string[] = [];
  const transport = await getRedisTransport({
    url: server.url,
    application,
    onError: (_, { stage }) => stages.push(`transport ${stage}`),
  });
  const inbox = await getRedisInbox({
    url: server.url,
    application,
    onError: (_, { stage }) => stages.push(`inbox ${stage}`),
  });
  let handled = 0;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox,
    drainTimeoutMs: DRAIN_MS,
    onError: () => undefined,
    handler: async (message) => {
      handled += 1;
      if ((message.data as { n: number }).n === 10) await held;
    },
  });
  await consumer.start();
  await transport.publish(
    'orders',
    Array.from({ length: 11 }, (_, n) => createMessage({ type: 'OrderPlaced', key: `o-${n}`, data: { n } })),
  );
  await waitUntil(() => handled === 11, 'the 11 messages to reach the handler');
  return { transport, inbox, consumer, stages, release };
}

describe('redis: shutdown with the server gone', { skip }, () => {
  for (const order of ['consumer first', 'transport first'] as const) {
    it(`stops the consumer, the transport and the inbox (${order}), each within its bound; the loss is reported`, async () => {
      const server = await startPrivateServer();
      if ('reason' in server) return;
      let parts: Awaited<ReturnType<typeof runningConsumer>> | undefined;
      try {
        parts = await runningConsumer(server);
        const { transport, inbox, consumer, stages, release } = parts;
        await server.stop();
        // The held handler ends now: its mark waits for a connection that does not come back.
        release();
        // Once the transport saw the drop (its leases lost), nothing it would send can be answered: closing is at once.
        // Before that (the server just died), a command may still go out and wait for its deadline.
        await waitUntil(
          () => stages.includes('transport connection') && stages.includes('transport lease'),
          'the transport to see the connection drop',
        );
        const stopConsumer = () =>
          settlesWithin(consumer.stop(), DRAIN_MS + COMMAND_DEADLINE_MS + 3000, 'consumer.stop()');
        const closeTransport = async () => {
          const started = Date.now();
          await settlesWithin(transport.close(), 2000, 'transport.close()');
          return Date.now() - started;
        };
        if (order === 'consumer first') {
          await stopConsumer();
          assert.ok(
            (await closeTransport()) < 1000,
            'the transport closes at once: its readers stopped with the consumer',
          );
        } else {
          await closeTransport();
          await stopConsumer();
        }
        await settlesWithin(inbox.close(), 1000, 'inbox.close()');
        assert.ok(stages.includes('inbox connection'), `the inbox reported its connection too: ${stages.join(', ')}`);
      } finally {
        // After a failure too: a client left open would reconnect forever and keep this file running.
        await Promise.allSettled([parts?.consumer.stop(), parts?.transport.close(), parts?.inbox.close()]);
        await server.stop();
      }
    });
  }

  it('a consumer started after the server went away fails its start with a retryable TransportError', async () => {
    const server = await startPrivateServer();
    if ('reason' in server) return;
    let transport: RedisTransport | undefined;
    let consumer: Consumer | undefined;
    try {
      const application = testApplication('shutdown-start');
      transport = await getRedisTransport({ url: server.url, application, onError: () => undefined });
      consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        onError: () => undefined,
        handler: () => undefined,
      });
      await server.stop();
      const error = await settlesWithin(
        consumer.start().then(
          () => undefined,
          (e: unknown) => e,
        ),
        COMMAND_DEADLINE_MS + 3000,
        'consumer.start()',
      );
      assert.ok(isFactlineError(error) && error.code === 'TRANSPORT' && error.retryable, String(error));
      await settlesWithin(consumer.stop(), 2000, 'consumer.stop()');
      await settlesWithin(transport.close(), 2000, 'transport.close()');
    } finally {
      await Promise.allSettled([consumer?.stop(), transport?.close()]);
      await server.stop();
    }
  });
});
