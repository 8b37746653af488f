import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Consumer,
  createConsumer,
  createMessage,
  getInMemoryDeadLetterStore,
  getInMemoryInbox,
} from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

// NATS gone for good (a private server stopped) while a consumer holds its partitions and one handler still
// runs: the consumer and the transport stop in either order within their bounds. Claims that cannot be given
// up (no connection) are left to expire after claimTtlMs, and said so, instead of each call waiting for its
// deadline one after the other.
const probe = await startPrivateServer({ jetstream: true });
const skip = 'reason' in probe ? probe.reason : false;
if (!('reason' in probe)) await probe.stop();

const CLAIM_TTL_MS = 3000;

describe('nats: shutdown with the server gone', { skip }, () => {
  for (const order of ['consumer first', 'transport first'] as const) {
    it(`stops the consumer and the transport (${order}); the claims are left to expire, and reported`, async () => {
      const server = await startPrivateServer({ jetstream: true });
      if ('reason' in server) return;
      const stages: string[] = [];
      const errors: string[] = [];
      let transport: NatsTransport | undefined;
      let consumer: Consumer | undefined;
      try {
        transport = await getNatsTransport({
          url: server.url,
          application: testApplication('shutdown'),
          partitions: 4,
          claimTtlMs: CLAIM_TTL_MS,
          onError: (error, { stage }) => {
            stages.push(stage);
            errors.push(String(error));
          },
        });
        let handled = 0;
        let release: () => void = () => undefined;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        consumer = createConsumer({
          name: 'billing',
          topic: 'orders',
          transport,
          inbox: getInMemoryInbox(),
          deadLetters: getInMemoryDeadLetterStore(),
          drainTimeoutMs: 1000,
          onError: () => undefined,
          handler: async (message) => {
            handled += 1;
            if ((message.data as { n: number }).n === 10) await held;
          },
        });
        await consumer.start();
        const owner = transport;
        await waitUntil(() => owner.heldPartitions('orders', 'billing').length === 4, 'the four partitions claimed');
        await transport.publish(
          'orders',
          Array.from({ length: 11 }, (_, n) => createMessage({ type: 'OrderPlaced', key: `o-${n}`, data: { n } })),
        );
        await waitUntil(() => handled === 11, 'the 11 messages to reach the handler');
        await server.stopServer();
        await waitUntil(() => stages.includes('connection'), 'the dropped connection reported');
        release();
        // Each part: a claim call under way ends within a third of the ttl, the connection's drain within 5 s.
        const bound = CLAIM_TTL_MS + 5000 + 3000;
        const stopConsumer = (c: Consumer) => settlesWithin(c.stop(), 1000 + bound, 'consumer.stop()');
        const closeTransport = (t: NatsTransport) => settlesWithin(t.close(), bound, 'transport.close()');
        if (order === 'consumer first') {
          await stopConsumer(consumer);
          await closeTransport(transport);
        } else {
          await closeTransport(transport);
          await stopConsumer(consumer);
        }
        assert.ok(
          errors.some((e) =>
            /not connected: the claims of orders\/billing \(partitions [0-3, ]+\) are left to expire after 3000 ms/.test(
              e,
            ),
          ),
          `the claims left to expire are reported: ${errors.join(' | ')}`,
        );
      } finally {
        await Promise.allSettled([consumer?.stop(), transport?.close()]);
        await server.stop();
      }
    });
  }
});
