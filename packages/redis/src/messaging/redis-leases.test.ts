import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { partitionOf } from '../keys.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('leases');

const consumersOf = async (stream: string, group: string) =>
  JSON.stringify(await client.sendCommand(['XINFO', 'CONSUMERS', stream, group]));

describe('redis: partition leases and consumer names', { skip }, () => {
  it('a reader whose lease another holder took stops handing out that partition at once; the new holder gets its entries', async () => {
    const open = () => getRedisTransport({ url: redisUrl, application, partitions: 1, leaseMs: 600 });
    const first = await open();
    const second = await open();
    try {
      const a = first.subscribe('orders', 'billing');
      const signal = new AbortController().signal;
      await first.publish('orders', [createMessage({ type: 'A', key: 'k', data: { n: 1 } })]);
      const [held] = await a.receive(1, 5000, signal);
      assert.ok(held, 'the first reader got the message');
      assert.deepEqual(first.heldPartitions('orders', 'billing'), [0]);
      const b = second.subscribe('orders', 'billing');
      // The second reader gets the lease (as after a pause of the first longer than leaseMs): the first loses it at
      // its next renewal, the second takes the partition over at its next look.
      await client.sendCommand([
        'SET',
        first.keys.lease('orders', 'billing', 0),
        `${second.consumerName}-1`,
        'PX',
        '5000',
      ]);
      await first.publish('orders', [createMessage({ type: 'A', key: 'k', data: { n: 2 } })]);
      await waitUntil(() => first.heldPartitions('orders', 'billing').length === 0, 'the first reader to let go', 5000);
      assert.deepEqual(await a.receive(10, 50, signal), [], 'nothing more from a partition whose lease is lost');
      // The second reader takes the partition over: the pending entry (claimed) first, then the new one.
      const got: Delivery[] = [];
      await waitUntil(
        async () => {
          got.push(...(await b.receive(10, 100, signal)));
          return got.length >= 2;
        },
        'the second reader to get both',
        10_000,
      );
      assert.deepEqual(
        got.map((d) => (d.message.data as { n: number }).n),
        [1, 2],
      );
      assert.equal(got[0]?.deliveryCount, 2, 'the claimed entry counts its first delivery');
      await Promise.all(got.map((d) => d.ack()));
      await a.close();
      await b.close();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('consumer names are unique per process and removed from the group at shutdown, their pending entries handed back', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const stream = transport.keys.stream('names', 0);
    try {
      const subscription = transport.subscribe('names', 'g');
      await transport.publish('names', [createMessage({ type: 'A', key: 'k', data: {} })]);
      const [held] = await subscription.receive(1, 5000, new AbortController().signal);
      assert.ok(held);
      assert.match(await consumersOf(stream, 'g'), new RegExp(transport.consumerName));
      await subscription.close();
    } finally {
      // Also after a failed assertion: a transport left open would keep this file running.
      await transport.close();
    }
    const after = await consumersOf(stream, 'g');
    assert.doesNotMatch(after, new RegExp(transport.consumerName), 'the name is gone');
    const pending = (await client.sendCommand(['XPENDING', stream, 'g'])) as [number, unknown, unknown, unknown];
    assert.equal(Number(pending[0]), 1, 'its unacknowledged entry is still pending, for the next reader');
    assert.match(after, /factline-returned/);
  });

  it('a subscription closed before its group was declared takes no lease and leaves no reader or connection behind', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2, leaseMs: 600 });
    try {
      const readersKey = `${application}:readers:returns:refunds`;
      const leaseKeys = [0, 1].map((p) => transport.keys.lease('returns', 'refunds', p));
      // Only this application's connections: other test files share the server.
      const connections = async () =>
        String(await client.sendCommand(['CLIENT', 'LIST']))
          .split('\n')
          .filter((line) => line.includes(`name=factline-${application}-`)).length;
      const before = await connections();
      // Closed at once: its declaration is still on its way to Redis.
      await transport.subscribe('returns', 'refunds').close();
      await waitUntil(
        async () => Number(await client.sendCommand(['SISMEMBER', transport.keys.groups('returns'), 'refunds'])) === 1,
        'the declaration done',
      );
      // What a started reader does at once (register, take the leases) within a lease time; nothing must come.
      const deadline = Date.now() + 600;
      while (Date.now() < deadline) {
        assert.equal(Number(await client.sendCommand(['EXISTS', readersKey, ...leaseKeys])), 0, 'a lease or a reader');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(transport.heldPartitions('returns', 'refunds'), []);
      const after = await connections();
      assert.ok(after <= before, `no blocking connection left open (${before} connections before, ${after} after)`);
    } finally {
      await transport.close();
    }
  });

  it("a subscription's close and the transport's close at once: the partitions are handed back before the connection ends", async () => {
    const reports: string[] = [];
    const transport = await getRedisTransport({
      url: redisUrl,
      application,
      partitions: 2,
      leaseMs: 5000,
      onError: (error) => reports.push(String(error)),
    });
    const subscription = transport.subscribe('invoices', 'mailing');
    await waitUntil(() => transport.heldPartitions('invoices', 'mailing').length === 2, 'both partitions held');
    const leaseKeys = [0, 1].map((p) => transport.keys.lease('invoices', 'mailing', p));
    await Promise.all([subscription.close(), transport.close()]);
    assert.equal(Number(await client.sendCommand(['EXISTS', ...leaseKeys])), 0, 'the leases freed at once');
    assert.equal(Number(await client.sendCommand(['EXISTS', `${application}:readers:invoices:mailing`])), 0);
    assert.deepEqual(reports, []);
  });
});

// A reader's periodic work (renewals, take-overs, late claims, trims) has a round trip per partition: made one after
// another, a slow path to Redis and many partitions stretch a round of it past the lease, and the reader loses
// leases it holds. Through a forwarder whose answers come 60 ms late, one reader of 24 partitions keeps them all.
/**
 * Runs `body` with a transport of 24 partitions reading `topic` for `billing` through a forwarder whose answers
 * come `delayMs` late, once it holds every partition; closes both after, whatever happens.
 */
async function holdingAllOverSlowPath(
  topic: string,
  delayMs: number,
  leaseMs: number,
  body: (transport: RedisTransport, errors: string[]) => Promise<void>,
) {
  const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
  forwarder.delayReplies(delayMs);
  const errors: string[] = [];
  const opened: RedisTransport[] = [];
  try {
    const transport = await getRedisTransport({
      url: `redis://127.0.0.1:${forwarder.port}`,
      application,
      partitions: 24,
      leaseMs,
      onError: (error, { stage }) => errors.push(`${stage}: ${String(error)}`),
    });
    opened.push(transport);
    transport.subscribe(topic, 'billing');
    await waitUntil(
      () => transport.heldPartitions(topic, 'billing').length === 24,
      'the reader to hold every partition',
      20_000,
    );
    await body(transport, errors);
  } finally {
    forwarder.delayReplies(0);
    await Promise.allSettled(opened.map((transport) => transport.close()));
    await forwarder.close();
  }
}

describe('redis: partition leases over a slow path', { skip }, () => {
  it('a reader of 24 partitions with answers 60 ms late takes them all and loses none', async () => {
    await holdingAllOverSlowPath('slow', 60, 3000, async (transport, errors) => {
      // Two lease times: every lease renewed at least twice.
      const until = Date.now() + 6000;
      await waitUntil(() => errors.length > 0 || Date.now() >= until, 'two lease times to pass', 10_000);
      assert.deepEqual(errors, []);
      assert.equal(transport.heldPartitions('slow', 'billing').length, 24);
    });
  });

  it('a reader of 24 partitions with answers 500 ms late hands them all back at its close', async () => {
    await holdingAllOverSlowPath('handed', 500, 9000, async (transport, errors) => {
      // Handed back one after another, 24 round trips of 500 ms would outlast the stop's bound (10 s): the leases
      // would be left to expire, the partitions idle for up to leaseMs.
      await transport.close();
      const leases = Array.from({ length: 24 }, (_, p) => transport.keys.lease('handed', 'billing', p));
      assert.equal(Number(await client.sendCommand(['EXISTS', ...leases])), 0, 'every lease freed at the close');
      assert.deepEqual(errors, []);
    });
  });
});

/**
 * This file's blocking reads waiting in Redis now (its transports' connections named `factline-<application>-…-read`,
 * blocked in `XREADGROUP`; other files run beside it on the same server).
 */
const blockedReads = async () =>
  String(await client.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']))
    .split('\n')
    .filter(
      (line) =>
        line.includes(` name=factline-${application}-`) &&
        / name=\S+-read /.test(line) &&
        / flags=b /.test(line) &&
        / cmd=xreadgroup /.test(line),
    ).length;

// A reader that gives a partition up for a fairer share must read nothing more of it: a blocking read in flight
// that covers it would take entries published once the next holder has it (pending to the wrong reader, they reach
// that holder late, behind newer entries of their keys). Long leases and blocking reads, short rounds (every
// trimIntervalMs): the first reader's read covers both partitions when the second reader comes.
describe('redis: a partition handed back for a fairer share', { skip }, () => {
  it('is not read by its former holder once the next holder has it', async () => {
    const options = {
      url: redisUrl,
      application,
      partitions: 2,
      leaseMs: 20_000,
      blockMs: 20_000,
      trimIntervalMs: 100,
    };
    const opened: RedisTransport[] = [];
    try {
      const first = await getRedisTransport(options);
      opened.push(first);
      const second = await getRedisTransport(options);
      opened.push(second);
      first.subscribe('shares', 'billing');
      await waitUntil(() => first.heldPartitions('shares', 'billing').length === 2, 'the first to hold both', 10_000);
      await waitUntil(async () => (await blockedReads()) === 1, "the first reader's blocking read", 5000);
      const b = second.subscribe('shares', 'billing');
      await waitUntil(
        () =>
          second.heldPartitions('shares', 'billing').length === 1 &&
          first.heldPartitions('shares', 'billing').length === 1,
        'one partition each',
        10_000,
      );
      // The second has taken the partition over (claimed what was pending) once its own read waits too.
      await waitUntil(async () => (await blockedReads()) === 2, "the second reader's blocking read", 5000);
      const [moved] = second.heldPartitions('shares', 'billing');
      const stream = second.keys.stream('shares', moved as number);
      // Only to that partition: a read served by another of its streams would end the first reader's read first.
      const keys = Array.from({ length: 40 }, (_, i) => `k-${i}`).filter((key) => partitionOf(key, 2) === moved);
      await second.publish(
        'shares',
        keys.map((key, i) => createMessage({ type: 'E', key, data: { i } })),
      );
      const signal = new AbortController().signal;
      const got: Delivery[] = [];
      await waitUntil(
        async () => {
          got.push(...(await b.receive(20, 50, signal)));
          const [pending] = (await client.sendCommand(['XPENDING', stream, 'billing'])) as [number];
          return Number(pending) === Number(await client.sendCommand(['XLEN', stream]));
        },
        'every entry of the moved partition to be read',
        10_000,
      );
      const pending = (await client.sendCommand(['XPENDING', stream, 'billing', '-', '+', '20'])) as [
        string,
        string,
        number,
        number,
      ][];
      assert.equal(pending.length, keys.length);
      const elsewhere = pending.filter(([, owner, , times]) => !owner.startsWith(second.consumerName) || times !== 1);
      assert.equal(
        elsewhere.length,
        0,
        `${elsewhere.length} of ${pending.length} entries read by the reader that handed the partition back`,
      );
      await Promise.all(got.map((d) => d.ack()));
    } finally {
      await Promise.allSettled(opened.map((transport) => transport.close()));
    }
  });
});
