import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, type Delivery, type Subscription } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { type Forwarder, startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('lease-expiry');

const LEASE_MS = 3000;
/** How late the lease renewals' answers come back, in the first case. */
const REPLY_DELAY_MS = 1000;
/** Timer and polling slack allowed past the server's expiry. */
const SLACK_MS = 250;
const MESSAGES = 400;
const realNow = Date.now;
const signal = new AbortController().signal;

/**
 * A transport through a forwarder to the shared server, reading topic `topic` (one partition) for `billing`:
 * once it holds the partition, every entry read into it (pending to it) and one handed out.
 */
async function holding(topic: string) {
  const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
  const transport = await getRedisTransport({
    url: `redis://127.0.0.1:${forwarder.port}`,
    application,
    partitions: 1,
    leaseMs: LEASE_MS,
    prefetch: 1000,
  });
  const subscription = transport.subscribe(topic, 'billing');
  await transport.publish(
    topic,
    Array.from({ length: MESSAGES }, (_, i) => createMessage({ type: 'E', key: `k-${i}`, data: { i } })),
  );
  const stream = transport.keys.stream(topic, 0);
  await waitUntil(
    async () =>
      Number(((await client.sendCommand(['XPENDING', stream, 'billing'])) as [number])[0]) === MESSAGES &&
      transport.heldPartitions(topic, 'billing').length === 1,
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
  const lease = transport.keys.lease(topic, 'billing', 0);
  const pttl = async () => Number(await client.sendCommand(['PTTL', lease]));
  return { forwarder, transport, subscription, pttl };
}

/** Asks for the held entries one at a time, unacknowledged, until `until` (real clock): the last hand-out's time. */
async function lastHandOut(subscription: Subscription, until: number): Promise<number> {
  let last = 0;
  while (realNow() < until) {
    if ((await subscription.receive(1, 0, signal)).length > 0) last = realNow();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return last;
}

async function closeBoth(forwarder: Forwarder, transport: RedisTransport) {
  // Its requests held, the transport closes within its bounds (told, not waited on for ever).
  await forwarder.close();
  await transport.close();
}

// A reader must stop handing out a partition's entries no later than Redis frees its lease for another reader.
// Through a forwarder to the shared server; once the last renewal reached Redis, nothing more the reader sends gets
// through (answers to what reached it still come back): that renewal's expiry on the server is the last. Entries
// already read keep being asked for, one at a time, unacknowledged (keys of their own: none waits for another).
describe('redis: a partition lease ends in the process no later than in Redis', { skip }, () => {
  it('with answers coming late: counted from the asking, not from the answer', async () => {
    const { forwarder, transport, subscription, pttl } = await holding('late');
    try {
      forwarder.delayReplies(REPLY_DELAY_MS);
      // A renewal reaching Redis after that shows as the lease's time to live going back up.
      let last = await pttl();
      let serverExpiry = 0;
      await waitUntil(
        async () => {
          const now = await pttl();
          const renewed = now > last + 100;
          last = now;
          if (!renewed) return false;
          forwarder.holdRequests();
          serverExpiry = realNow() + (await pttl());
          return true;
        },
        'a renewal to reach Redis',
        LEASE_MS * 2,
      );
      const at = await lastHandOut(subscription, serverExpiry + REPLY_DELAY_MS + 3 * SLACK_MS);
      assert.ok(at > 0, 'entries were handed out after the renewal');
      assert.ok(at <= serverExpiry + SLACK_MS, `handed out ${at - serverExpiry} ms after Redis freed the lease`);
    } finally {
      await closeBoth(forwarder, transport);
    }
  });

  it('with the wall clock stepped back a minute: the lease is counted on a monotonic clock', async () => {
    const { forwarder, transport, subscription, pttl } = await holding('stepped');
    try {
      forwarder.holdRequests();
      const serverExpiry = realNow() + (await pttl());
      // As NTP stepping the clock back, or a virtual machine resumed with an old time.
      Date.now = () => realNow() - 60_000;
      const at = await lastHandOut(subscription, serverExpiry + 4 * SLACK_MS);
      assert.ok(at > 0, 'entries were handed out after the step');
      assert.ok(at <= serverExpiry + SLACK_MS, `handed out ${at - serverExpiry} ms after Redis freed the lease`);
    } finally {
      Date.now = realNow;
      await closeBoth(forwarder, transport);
    }
  });
});

// A reader must read no new entry of a partition once Redis may have freed its lease: an entry read (`>`) is pending
// to that reader, and the partition's next holder never reads it; it would come late, behind newer entries of its
// key. The first reader's commands stop reaching Redis (its lease is not renewed) while its blocking connection still
// works; a second reader takes the partition over, and what is published then must all be read by that one.
describe('redis: a reader reads no new entries of a partition past its lease', { skip }, () => {
  it('with its renewals held and its blocking read still passing', async () => {
    const topic = 'past-lease';
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    const options = { application, partitions: 1, leaseMs: 1500 };
    const opened: RedisTransport[] = [];
    try {
      // Blocking reads longer than the lease: one in flight would outlive it.
      const first = await getRedisTransport({ ...options, url: `redis://127.0.0.1:${forwarder.port}`, blockMs: 5000 });
      opened.push(first);
      first.subscribe(topic, 'billing');
      await waitUntil(() => first.heldPartitions(topic, 'billing').length === 1, 'the first reader to hold it', 10_000);
      // Its blocking connection (named `…-read`), once open.
      let reading: number[] = [];
      await waitUntil(
        async () => {
          const clients = String(await client.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
          reading = clients
            .split('\n')
            .filter((line) => / name=\S+-read /.test(line))
            .map((line) => Number(/ addr=[^ ]*:(\d+) /.exec(line)?.[1]))
            .filter((port) => forwarder.serverPorts().includes(port));
          return reading.length === 1;
        },
        'the first reader to open its blocking connection',
        10_000,
      );
      forwarder.holdRequests({ except: reading });

      const second = await getRedisTransport({ ...options, url: redisUrl });
      opened.push(second);
      const subscription = second.subscribe(topic, 'billing');
      await waitUntil(() => second.heldPartitions(topic, 'billing').length === 1, 'the second to take it', 10_000);
      const count = 20;
      await second.publish(
        topic,
        Array.from({ length: count }, (_, i) => createMessage({ type: 'E', key: `k-${i}`, data: { i } })),
      );
      const got: Delivery[] = [];
      const stream = second.keys.stream(topic, 0);
      await waitUntil(
        async () => {
          got.push(...(await subscription.receive(count, 50, signal)));
          const [pending] = (await client.sendCommand(['XPENDING', stream, 'billing'])) as [number];
          return got.length === count || Number(pending) === count;
        },
        'every entry to be read',
        10_000,
      );
      const owners = (await client.sendCommand(['XPENDING', stream, 'billing', '-', '+', String(count)])) as [
        string,
        string,
      ][];
      const byFirst = owners.filter(([, owner]) => owner.startsWith(first.consumerName)).length;
      assert.equal(byFirst, 0, `${byFirst} of ${count} entries read by the reader whose lease had ended`);
      await waitUntil(
        async () => {
          got.push(...(await subscription.receive(count, 50, signal)));
          return got.length === count;
        },
        'the second reader to get every entry',
        5000,
      );
      await Promise.all(got.map((delivery) => delivery.ack()));
    } finally {
      // The first's requests held: closed within its bounds once the forwarder is gone.
      await forwarder.close();
      await Promise.allSettled(opened.map((transport) => transport.close()));
    }
  });
});
