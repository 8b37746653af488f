import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { testApplication } from '../fixtures/server.ts';
import { getRedisInbox } from './redis-inbox.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

// A private redis-server made to refuse writes with its connections up, as a server answering BUSY, MISCONF, OOM,
// NOREPLICAS or READONLY does: `min-replicas-to-write 1` with no replica (every write, scripts' included, is
// answered NOREPLICAS), or a Lua script looping (every other command answered BUSY once busy-reply-threshold,
// 10 ms here, has passed). The shared server is never reconfigured.
const server = await startPrivateServer({ appendOnly: false });
const skip = 'reason' in server ? server.reason : false;
const url = 'reason' in server ? '' : server.url;
const connect = async () => {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
};
const admin = skip ? undefined : await connect();
/** The private server's admin connection (the cases skip without it). */
const adminClient = () => admin as NonNullable<typeof admin>;
await admin?.sendCommand(['CONFIG', 'SET', 'busy-reply-threshold', '10']);
const closing: (() => Promise<unknown>)[] = [];

after(async () => {
  for (const close of closing.reverse()) await close().catch(() => undefined);
  await admin?.close();
  if (!('reason' in server)) await server.stop();
});

type Refusal = 'NOREPLICAS' | 'BUSY';

/** Makes the server refuse writes with `refusal`, resolving once it does; `lift` takes them again. */
async function refuse(refusal: Refusal): Promise<{ lift(): Promise<void> }> {
  const client = adminClient();
  if (refusal === 'NOREPLICAS') {
    await client.sendCommand(['CONFIG', 'SET', 'min-replicas-to-write', '1']);
    return { lift: () => client.sendCommand(['CONFIG', 'SET', 'min-replicas-to-write', '0']).then(() => undefined) };
  }
  const looping = await connect();
  const loop = looping.sendCommand(['EVAL', 'while true do end', '0']).catch(() => undefined);
  await waitUntil(
    () =>
      client.sendCommand(['PING']).then(
        () => false,
        (e: Error) => /^BUSY/.test(e.message),
      ),
    'BUSY',
  );
  let lifted = false;
  const lift = async () => {
    if (lifted) return;
    lifted = true;
    // SCRIPT KILL is taken while the script runs: it ends it (it wrote nothing).
    await client.sendCommand(['SCRIPT', 'KILL']).catch(() => undefined);
    await loop;
    await looping.close();
  };
  closing.push(lift);
  return { lift };
}

const pending = async (transport: RedisTransport, topic: string) =>
  Number(((await adminClient().sendCommand(['XPENDING', transport.keys.stream(topic, 0), 'billing'])) as [number])[0]);

const open = async (application: string, errors: string[], leaseMs = 3000) => {
  const transport = await getRedisTransport({
    url,
    application,
    partitions: 1,
    leaseMs,
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    onError: (error) => errors.push(String((error as Error).message)),
  });
  closing.push(() => transport.close());
  return transport;
};

/** Publishes messages 1, 2, 3 of one key to `topic`, for `billing`. */
const publishThree = async (transport: RedisTransport, topic: string) => {
  await transport.declareSubscription(topic, 'billing');
  await transport.publish(
    topic,
    [1, 2, 3].map((n) => createMessage({ type: 'Counted', key: 'k', data: { n } })),
  );
};

describe('redis: a mark or ack Redis refuses with the connection up', { skip }, () => {
  for (const refusal of ['NOREPLICAS', 'BUSY'] as const) {
    it(`(${refusal}) the Redis inbox's mark that acks: the run fails and the message runs again before its key's later ones`, async () => {
      const application = testApplication('refused-mark');
      const errors: string[] = [];
      const transport = await open(application, errors);
      const inbox = await getRedisInbox({ url, application, claimMs: 1000 });
      closing.push(() => inbox.close());
      await publishThree(transport, 'inboxed');
      const handled: number[] = [];
      let refused: { lift(): Promise<void> } | undefined;
      const consumer = createConsumer({
        name: 'billing',
        topic: 'inboxed',
        transport,
        inbox,
        pollMs: 100,
        onError: (error) => errors.push(String((error as Error).message)),
        async handler(message) {
          handled.push((message.data as { n: number }).n);
          refused ??= await refuse(refusal);
        },
      });
      try {
        await consumer.start();
        await waitUntil(
          () => errors.some((e) => e.includes(refusal) && e.includes('marking')),
          `the mark refused with ${refusal}`,
        );
        await refused?.lift();
        await waitUntil(
          async () => handled.includes(3) && (await pending(transport, 'inboxed')) === 0,
          'every message handled and acknowledged',
          20_000,
        );
        // Its mark never written, message 1 runs again, before 2 and 3 (not given up on, nor dead-lettered).
        assert.deepEqual(handled, [1, 1, 2, 3], errors.join('\n'));
        assert.equal(consumer.stats().deadLettered, 0, errors.join('\n'));
      } finally {
        await refused?.lift();
        await consumer.stop();
      }
    });
  }
});
