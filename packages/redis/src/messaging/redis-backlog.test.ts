import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { redisKeys } from '../keys.ts';
import { readBacklog } from './backlog.ts';
import { getRedisTransport } from './redis-transport.ts';
import { parseEntries } from './stream-replies.ts';

const { skip, application, client } = await sharedRedis('backlog');

describe('redis: backlog', { skip }, () => {
  it("counts a group's unread and pending entries, and tells the oldest one's time", async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      await transport.declareSubscription('orders', 'billing');
      assert.deepEqual(await transport.backlog?.('orders', 'billing'), { messages: 0, oldestAt: undefined });
      const before = Date.now();
      await transport.publish(
        'orders',
        Array.from({ length: 5 }, (_, i) => createMessage({ type: 'OrderPlaced', key: `o-${i}`, data: {} })),
      );
      const waiting = await transport.backlog?.('orders', 'billing');
      assert.equal(waiting?.messages, 5);
      assert.ok((waiting?.oldestAt ?? 0) >= before - 1000 && (waiting?.oldestAt ?? 0) <= Date.now());
      const subscription = transport.subscribe('orders', 'billing');
      const got = await subscription.receive(2, 5000, new AbortController().signal);
      assert.equal((await transport.backlog?.('orders', 'billing'))?.messages, 5, 'in delivery still counts');
      await Promise.all(got.map((d) => d.ack()));
      assert.equal((await transport.backlog?.('orders', 'billing'))?.messages, 5 - got.length);
      await subscription.close();
    } finally {
      await transport.close();
    }
  });

  it('a topic nothing was declared for has nothing waiting; a failed read is an error, never a zero', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      assert.deepEqual(await transport.backlog?.('never-declared', 'billing'), { messages: 0, oldestAt: undefined });
      // Partition 1's key holds something that is no stream: Redis refuses XINFO on it.
      await client.sendCommand(['SET', `${application}:stream:broken:1`, 'not a stream']);
      await assert.rejects(Promise.resolve(transport.backlog?.('broken', 'billing')), /WRONGTYPE/);
    } finally {
      await transport.close();
    }
  });

  it("counts the topic's delayed messages for the group, and takes the oldest's age from its createdAt", async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      await transport.declareSubscription('refunds', 'billing');
      await transport.declareSubscription('refunds:eu', 'billing');
      const hourAgo = new Date(Date.now() - 3_600_000);
      // Created an hour ago (an outbox relay catching up), appended now.
      const old = { ...createMessage({ type: 'Refund', key: 'r-1', data: {} }), createdAt: hourAgo };
      await transport.publish('refunds', [old]);
      const soon = new Date(Date.now() + 60_000);
      await transport.publish('refunds', [createMessage({ type: 'Refund', key: 'r-2', data: {}, deliverAt: soon })]);
      // Another topic whose streams' names begin like these: its delayed message is not this topic's.
      await transport.publish('refunds:eu', [createMessage({ type: 'Refund', key: 'r-3', data: {}, deliverAt: soon })]);
      const waiting = await transport.backlog?.('refunds', 'billing');
      assert.equal(waiting?.messages, 2, 'the appended one and the delayed one');
      assert.equal(waiting?.oldestAt, hourAgo.getTime());
      assert.equal((await transport.backlog?.('refunds:eu', 'billing'))?.messages, 1);
      // A release for one group waits for that group only.
      await transport.declareSubscription('refunds', 'audit');
      const subscription = transport.subscribe('refunds', 'audit');
      await transport.publish('refunds', [createMessage({ type: 'Refund', key: 'r-4', data: {} })]);
      const [delivery] = await subscription.receive(1, 5000, new AbortController().signal);
      await delivery?.release(60_000);
      // release resolves at once; the move (ack and schedule, one script) reaches Redis after.
      await waitUntil(
        async () => Number(await client.sendCommand(['ZCARD', `${application}:delayed`])) === 3,
        'r-4 scheduled',
      );
      assert.equal(
        (await transport.backlog?.('refunds', 'audit'))?.messages,
        2,
        'the delayed r-2 and the released r-4',
      );
      assert.equal((await transport.backlog?.('refunds', 'billing'))?.messages, 3, 'r-1, r-2 and r-4');
      await subscription.close();
    } finally {
      await transport.close();
    }
  });

  it("a retry delayed for one group is not in another group's backlog, neither counted nor dated", async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 2 });
    try {
      await transport.declareSubscription('returns', 'billing');
      await transport.declareSubscription('returns', 'audit');
      const hourAgo = new Date(Date.now() - 3_600_000);
      await transport.publish('returns', [
        { ...createMessage({ type: 'Returned', key: 'r-1', data: {} }), createdAt: hourAgo },
      ]);
      const signal = new AbortController().signal;
      const billing = transport.subscribe('returns', 'billing');
      const audit = transport.subscribe('returns', 'audit');
      const [retried] = await billing.receive(1, 5000, signal);
      const [done] = await audit.receive(1, 5000, signal);
      assert.ok(retried && done, 'each group has the message');
      await done.ack();
      await retried.release(60_000);
      // The release acks the entry and schedules its copy in one script: nothing pending, the copy delayed.
      const pendingOf = async (group: string) => {
        let count = 0;
        for (const p of [0, 1])
          count += Number(
            ((await client.sendCommand(['XPENDING', `${application}:stream:returns:${p}`, group])) as unknown[])[0],
          );
        return count;
      };
      await waitUntil(async () => (await pendingOf('billing')) === 0, "billing's retry scheduled");
      await waitUntil(async () => (await pendingOf('audit')) === 0, "audit's ack to reach Redis");
      assert.deepEqual(await transport.backlog?.('returns', 'billing'), { messages: 1, oldestAt: hourAgo.getTime() });
      assert.deepEqual(await transport.backlog?.('returns', 'audit'), { messages: 0, oldestAt: undefined });
      await billing.close();
      await audit.close();
    } finally {
      await transport.close();
    }
  });
});

describe('redis: backlog read while the group acks', { skip }, () => {
  it('a pending entry acked between the group summary and its first-pending read counts as seen, never an error', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    try {
      await transport.declareSubscription('acking', 'billing');
      await transport.publish('acking', [createMessage({ type: 'Paid', key: 'p-1', data: {} })]);
      const keys = redisKeys(application);
      const stream = keys.stream('acking', 0);
      const read = (await client.sendCommand([
        'XREADGROUP',
        'GROUP',
        'billing',
        'someone',
        'COUNT',
        '1',
        'STREAMS',
        stream,
        '>',
      ])) as unknown[];
      assert.ok(read, 'the entry handed out');
      const [entry] = parseEntries(await client.sendCommand(['XRANGE', stream, '-', '+']));
      // The group acks its entry right after the backlog read XINFO GROUPS, as a consumer running beside it may.
      const racing = {
        async sendCommand(args: string[]) {
          if (args[0] === 'XPENDING') await client.sendCommand(['XACK', stream, 'billing', String(entry?.id)]);
          return client.sendCommand(args);
        },
      };
      const waiting = await readBacklog(racing, keys, 1, 'acking', 'billing');
      assert.equal(waiting.messages, 1, 'the count XINFO GROUPS gave');
      assert.equal(waiting.oldestAt, undefined, 'no entry left to date');
      assert.deepEqual(await transport.backlog?.('acking', 'billing'), { messages: 0, oldestAt: undefined });
    } finally {
      await transport.close();
    }
  });
});
