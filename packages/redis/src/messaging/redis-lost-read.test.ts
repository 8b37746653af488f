import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createMessage, type Delivery } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('lost-read');

/** `commands` in one write on a connection of their own, as RESP; resolves once each has its reply. */
function pipelined(commands: string[][]): Promise<void> {
  const url = new URL(redisUrl);
  const wire = commands
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    .join('');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port || 6379), url.hostname, () => socket.write(wire));
    let replies = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      replies += chunk;
      // Each reply here is one line: the entry id (a bulk string: two lines) and +OK.
      if (replies.split('\r\n').length > commands.length + 1) {
        socket.end();
        resolve();
      }
    });
    socket.on('error', reject);
  });
}

describe('redis: a read whose reply is lost', { skip }, () => {
  it("does not strand what it moved into the consumer's pending list: the key's messages still come in order", async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    try {
      const subscription = transport.subscribe('orders', 'billing');
      const signal = new AbortController().signal;
      await subscription.receive(1, 50, signal);
      await waitUntil(() => transport.heldPartitions('orders', 'billing').length === 1, 'the partition held', 5000);
      // The reader's blocking read, waiting on its own connection.
      const readerId = await waitUntil(
        async () => {
          const list = String(await client.sendCommand(['CLIENT', 'LIST']));
          const line = list
            .split('\n')
            .find(
              (l) => l.includes(`name=factline-${application}-`) && / cmd=xreadgroup /.test(l) && / flags=b /.test(l),
            );
          return line ? /^id=(\d+)/.exec(line)?.[1] : undefined;
        },
        'the blocking read waiting',
        5000,
        10,
      );
      const first = createMessage({ type: 'OrderPlaced', key: 'order-1', data: { n: 1 } });
      const second = createMessage({ type: 'OrderPlaced', key: 'order-1', data: { n: 2 } });
      // Served to the blocked read (into its pending list), whose connection is killed before the reply leaves.
      await pipelined([
        ['XADD', transport.keys.stream('orders', 0), '*', 'm', messageToJson(first)],
        ['CLIENT', 'KILL', 'ID', readerId],
      ]);
      await transport.publish('orders', [second]);
      const seen: string[] = [];
      const deadline = Date.now() + 4000;
      while (seen.length < 2 && Date.now() < deadline) {
        const got: Delivery[] = await subscription.receive(10, 200, signal);
        for (const delivery of got) {
          seen.push(String((delivery.message.data as { n: number }).n));
          assert.equal(delivery.deliveryCount, 1, `message ${seen.at(-1)} handed out once`);
          await delivery.ack();
        }
      }
      // Without reading its own pending entries first, 2 came at once and 1 only at the straggler sweep (2 × leaseMs).
      assert.deepEqual(seen, ['1', '2']);
      await subscription.close();
    } finally {
      await transport.close();
    }
  });
});
