import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { startForwarder } from '../fixtures/forwarder.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('lease-expiry');

const LEASE_MS = 3000;
/** How late the lease renewals' answers come back. */
const REPLY_DELAY_MS = 1000;
/** Timer and polling slack allowed past the server's expiry. */
const SLACK_MS = 250;
const MESSAGES = 400;

// A reader's lease runs from when Redis set it, not from when the answer came back: a reader whose answers come
// late (a slow path, an event loop busy elsewhere) must stop handing out the partition's entries no later than
// Redis frees the lease for another reader. Through a forwarder to the shared server: the renewals' answers are
// held back REPLY_DELAY_MS, then, once a renewal reached Redis, nothing more the reader sends gets through (its
// answer still comes back): that renewal's expiry on the server is the last. Entries already read keep being
// asked for, one at a time, unacknowledged (keys of their own: none waits for another).
describe('redis: a partition lease whose answers come late', { skip }, () => {
  it('the reader stops handing out by the time Redis frees the lease, not an answer-delay later', async () => {
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    const transport = await getRedisTransport({
      url: `redis://127.0.0.1:${forwarder.port}`,
      application,
      partitions: 1,
      leaseMs: LEASE_MS,
      prefetch: 1000,
    });
    const signal = new AbortController().signal;
    try {
      const subscription = transport.subscribe('expiry', 'billing');
      await transport.publish(
        'expiry',
        Array.from({ length: MESSAGES }, (_, i) => createMessage({ type: 'E', key: `k-${i}`, data: { i } })),
      );
      const stream = transport.keys.stream('expiry', 0);
      const lease = transport.keys.lease('expiry', 'billing', 0);
      // Every entry read into the reader (pending to it), the partition held.
      await waitUntil(
        async () =>
          Number(((await client.sendCommand(['XPENDING', stream, 'billing'])) as [number])[0]) === MESSAGES &&
          transport.heldPartitions('expiry', 'billing').length === 1,
        'the reader to hold the partition and every entry',
        10_000,
      );
      // Read is not yet in the buffer (the reply is parsed after Redis counts the entries pending): the first hand-out.
      const first: Delivery[] = [];
      await waitUntil(
        async () => {
          first.push(...(await subscription.receive(1, 100, signal)));
          return first.length === 1;
        },
        'entries handed out while the lease holds',
        10_000,
      );

      forwarder.delayReplies(REPLY_DELAY_MS);
      // A renewal reaching Redis after that shows as the lease's time to live going back up.
      const pttl = async () => Number(await client.sendCommand(['PTTL', lease]));
      let last = await pttl();
      let serverExpiry = 0;
      await waitUntil(
        async () => {
          const now = await pttl();
          const renewed = now > last + 100;
          last = now;
          if (!renewed) return false;
          forwarder.holdRequests();
          serverExpiry = Date.now() + (await pttl());
          return true;
        },
        'a renewal to reach Redis',
        LEASE_MS * 2,
      );

      let lastHandOut = 0;
      const until = serverExpiry + REPLY_DELAY_MS + 3 * SLACK_MS;
      while (Date.now() < until) {
        if ((await subscription.receive(1, 0, signal)).length > 0) lastHandOut = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(lastHandOut > 0, 'entries were handed out after the renewal');
      assert.ok(
        lastHandOut <= serverExpiry + SLACK_MS,
        `handed out ${lastHandOut - serverExpiry} ms after Redis freed the lease`,
      );
    } finally {
      // Its requests held, the transport closes within its bounds (told, not waited on for ever).
      await forwarder.close();
      await transport.close();
    }
  });
});
