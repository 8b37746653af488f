import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { startNatsProxy } from '../fixtures/proxy.ts';
import { natsUnavailable, natsUrl, testApplication, useManager } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = (await natsUnavailable()) || (!natsUrl.startsWith('nats://') && 'the proxy speaks plain nats:// only');
const application = testApplication('gatereconnect');
const never = new AbortController().signal;

describe('nats: a partition gated after a reconnect', { skip }, () => {
  const manager = useManager(application);

  it('stays closed while a message delivered to the lost pull is pending, though one naked with a delay came back', async () => {
    const proxy = await startNatsProxy();
    const ackWaitMs = 5000;
    const told: string[] = [];
    const reader = await getNatsTransport({
      url: proxy.url,
      application,
      partitions: 1,
      ackWaitMs,
      claimTtlMs: 30_000,
      reconnectWaitMs: 100,
      onError: (error, { stage }) => told.push(`${stage}: ${(error as Error).message}`),
    });
    const publisher = await getNatsTransport({ url: natsUrl, application, partitions: 1, ackWaitMs });
    const consumerName = topologyNames(application).consumer('orders', 'g', 0);
    const info = () => manager().consumers.info(application, consumerName);
    const handed: string[] = [];
    let done = false;
    let loop: Promise<void> = Promise.resolve();
    try {
      await reader.declareSubscription('orders', 'g');
      const sub = reader.subscribe('orders', 'g');
      loop = (async () => {
        // Bounded by the test's waits: each receive ends within 200 ms, `done` ends the loop.
        while (!done) {
          for (const delivery of await sub.receive(10, 200, never)) {
            handed.push(`${delivery.message.type}#${delivery.deliveryCount}`);
            // a1's first delivery goes back to the server for 2 s (naked with a delay): key A waits for it.
            if (delivery.message.type === 'a1' && delivery.deliveryCount === 1) await delivery.release(2000);
            else await delivery.ack();
          }
        }
        await sub.close();
      })();
      await waitUntil(() => reader.heldPartitions('orders', 'g').length === 1, 'the partition claimed');

      await publisher.publish('orders', [createMessage({ type: 'a1', key: 'A', data: {} })]);
      await waitUntil(async () => handed.includes('a1#1') && (await info()).num_ack_pending === 1, 'a1 naked');

      // b1 goes to the reader's pull but never reaches it; then the connection is lost: b1 is pending at the
      // server until its ack wait ends.
      proxy.dropDeliveries(application);
      await publisher.publish('orders', [createMessage({ type: 'b1', key: 'B', data: {} })]);
      await waitUntil(async () => {
        const now = await info();
        return now.num_ack_pending === 2 && now.num_pending === 0 && proxy.dropped() === 1;
      }, 'b1 delivered to a pull that never gets it');
      proxy.cut();
      proxy.dropDeliveries(undefined);

      // a1 back from its delay (its third delivery of the consumer, after a1 and b1), to the gated partition.
      await waitUntil(async () => (await info()).delivered.consumer_seq >= 3, 'a1 delivered again', 2 * ackWaitMs);
      await publisher.publish('orders', [createMessage({ type: 'b2', key: 'B', data: {} })]);
      await waitUntil(
        () => handed.some((h) => h.startsWith('b1')) && handed.some((h) => h.startsWith('b2')),
        'b1 and b2 handed out',
        3 * ackWaitMs,
      );
      done = true;
      await loop;

      assert.equal(told.filter((t) => t.startsWith('claim')).length, 0, `the claim held: ${told.join('; ')}`);
      assert.ok(
        told.some((t) => t.startsWith('connection')),
        `the connection was lost and the reader reconnected: ${told.join('; ')}`,
      );
      const b1 = handed.findIndex((h) => h.startsWith('b1'));
      const b2 = handed.findIndex((h) => h.startsWith('b2'));
      assert.ok(b1 < b2, `b2 was handed out before b1 (still pending at the server): ${handed.join(', ')}`);
      assert.deepEqual(handed, ['a1#1', 'a1#2', 'b1#2', 'b2#1'], 'a1 back, then B in order');
    } finally {
      done = true;
      await loop.catch(() => undefined);
      await reader.close();
      await publisher.close();
      await proxy.close();
    }
  });
});
