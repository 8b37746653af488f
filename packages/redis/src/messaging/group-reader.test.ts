import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import { closeClient, openClient, type RedisClient } from '../connection.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { redisKeys } from '../keys.ts';
import { scripts } from '../scripts.ts';
import { createGroupReader, type GroupReader } from './group-reader.ts';

const opened: RedisClient[] = [];
let reader: GroupReader | undefined;
const { skip, application, client } = await sharedRedis('group-reader', async () => {
  await reader?.stop();
  for (const own of opened) await closeClient(own);
});

const sha = (body: string) => createHash('sha1').update(body).digest('hex');
const open = async () => {
  const own = await openClient(redisUrl, {
    connectTimeoutMs: 3000,
    reconnectMinMs: 100,
    reconnectMaxMs: 1000,
    name: 'group-reader-test',
    onError: () => undefined,
  });
  opened.push(own);
  return own;
};

describe('redis: a group reader giving a partition up for a fairer share', { skip }, () => {
  it('hands it back only once an ack of it made just before has reached Redis', async () => {
    const keys = redisKeys(application);
    const topic = 'drained';
    const group = 'g';
    const streams = [0, 1].map((p) => keys.stream(topic, p));
    for (const stream of streams) await client.sendCommand(['XGROUP', 'CREATE', stream, group, '$', 'MKSTREAM']);
    // Loaded beforehand: a script's first call is refused (NOSCRIPT) and sent again, after calls made since.
    for (const body of Object.values(scripts)) await client.sendCommand(['SCRIPT', 'LOAD', body]);
    const own = await open();
    let delivery: Delivery | undefined;
    let acking: Promise<void> | undefined;
    /** Rounds whose registration counted a second reader; the first of them starts giving partition 0 up. */
    let shared = 0;
    let armed = false;
    // The ack is made as the renewal of partition 0 is answered in the round after: the round goes on to look
    // whether the partition is busy at once, before the ack batcher's next turn of the event loop sends it.
    const sendCommand = (command: string[]) =>
      own.sendCommand(command).then((reply) => {
        if (command[1] === sha(scripts.register) && Number(reply) >= 2 && ++shared === 2) armed = true;
        if (armed && command[1] === sha(scripts.renew) && command[3] === keys.lease(topic, group, 0)) {
          armed = false;
          acking = delivery?.ack();
        }
        return reply;
      });
    const traced = new Proxy(own, {
      get: (target, name) => {
        if (name === 'sendCommand') return sendCommand;
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const reports: string[] = [];
    reader = createGroupReader({
      keys,
      server: 'test',
      topic,
      group,
      partitions: 2,
      prefetch: 10,
      leaseMs: 600,
      blockMs: 100,
      trimIntervalMs: 60_000,
      consumerIdleMs: 60_000,
      reconnectMinMs: 100,
      reconnectMaxMs: 1000,
      consumer: 'reader-1',
      client: traced,
      openBlocking: open,
      declare: async () => undefined,
      delay: async () => 'failed',
      report: (error, stage) => reports.push(`${stage}: ${String(error)}`),
    });
    await reader.start();
    await waitUntil(() => reader?.held().length === 2, 'the reader to hold both partitions');
    const message = createMessage({ type: 'A', key: 'k', data: {} });
    await client.sendCommand(['XADD', streams[0] as string, '*', 'm', messageToJson(message)]);
    [delivery] = await reader.buffer.receive(1, 1, 5000, new AbortController().signal, 60_000);
    assert.equal(delivery?.message.id, message.id);
    // A delivery in hands in partition 1 as well: the reader gives up the first of those with the fewest.
    const other = createMessage({ type: 'A', key: 'other', data: {} });
    await client.sendCommand(['XADD', streams[1] as string, '*', 'm', messageToJson(other)]);
    const [otherDelivery] = await reader.buffer.receive(1, 1, 5000, new AbortController().signal, 60_000);
    assert.equal(otherDelivery?.message.id, other.id);
    // A second reader registers: the share is one partition, and the reader gives partition 0 up.
    await client.sendCommand(['ZADD', keys.readers(topic, group), String(Date.now() + 600_000), 'reader-2']);
    await waitUntil(() => reader?.held().length === 1, 'partition 0 handed back', 10_000);
    assert.deepEqual(reader.held(), [1]);
    assert.ok(acking, 'the ack was made in the round that handed the partition back, or the one before');
    await acking;
    const pending = (await client.sendCommand(['XPENDING', streams[0] as string, group])) as [number];
    assert.equal(Number(pending[0]), 0, 'the acked entry is not pending for the next holder to run again');
    await otherDelivery?.ack();
    assert.deepEqual(reports, []);
  });
});
