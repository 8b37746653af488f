import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

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
});
