import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { natsUnavailable, natsUrl, testApplication, useManager } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('gateprefetch');
const never = new AbortController().signal;

describe('nats: a partition gated behind a message pending elsewhere', { skip }, () => {
  const manager = useManager(application);

  it('holds no more than prefetch messages behind its gate (then one a second), however many are published', async () => {
    const open = () => getNatsTransport({ url: natsUrl, application, partitions: 1, prefetch: 16, claimTtlMs: 600 });
    // A message away for a delay at the server, naked by a process that then goes: the next holder's gate
    // counts it as pending elsewhere until it comes back.
    const first = await open();
    await first.declareSubscription('jobs', 'worker');
    const due = new Date(Date.now() + 8000);
    await first.publish('jobs', [createMessage({ type: 'Later', key: 'later', data: {}, deliverAt: due })]);
    const firstSub = first.subscribe('jobs', 'worker');
    const consumerName = topologyNames(application).consumer('jobs', 'worker', 0);
    const ackPending = async () => (await manager().consumers.info(application, consumerName)).num_ack_pending;
    await waitUntil(async () => (await ackPending()) === 1, 'the delayed message naked by the first holder');
    await firstSub.close();
    await first.close();

    const second = await open();
    try {
      const sub = second.subscribe('jobs', 'worker');
      await second.publish(
        'jobs',
        Array.from({ length: 200 }, (_, i) => createMessage({ type: 'Now', key: `k-${i}`, data: { i } })),
      );
      const since = Date.now();
      await waitUntil(() => Date.now() - since >= 3000, 'three seconds of the gate held');
      const pending = await ackPending();
      assert.ok(pending <= 1 + 16 + 5, `${pending} messages pulled behind the gate (prefetch 16)`);
      // Once the delayed message is back, everything flows.
      let received = 0;
      await waitUntil(
        async () => {
          for (const delivery of await sub.receive(50, 200, never)) {
            received += 1;
            await delivery.ack();
          }
          return received >= 201;
        },
        'every message, the delayed one included',
        30_000,
      );
      await sub.close();
    } finally {
      await second.close();
    }
  });
});
