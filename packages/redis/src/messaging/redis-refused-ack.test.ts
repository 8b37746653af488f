import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage, type Delivery } from '@factline/core';
import { settledWithin } from '@factline/core/adapter';
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

/** Whether `ns` never goes back: a key's messages handled in publish order (a repeat of the last one is fine). */
const inOrder = (ns: number[]) => ns.every((n, i) => i === 0 || n >= (ns[i - 1] as number));

const open = async (application: string, errors: string[], leaseMs = 3000, blockMs?: number) => {
  const transport = await getRedisTransport({
    url,
    application,
    partitions: 1,
    leaseMs,
    ...(blockMs === undefined ? {} : { blockMs }),
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
const nOf = (delivery: Delivery) => (delivery.message.data as { n: number }).n;

describe('redis: a mark or ack Redis refuses with the connection up', { skip }, () => {
  for (const refusal of ['NOREPLICAS', 'BUSY'] as const) {
    it(`(${refusal}) holds its key's later messages back until it is acked: they come after it, in order`, async () => {
      const application = testApplication('refused-ack');
      const errors: string[] = [];
      const transport = await open(application, errors);
      await publishThree(transport, 'plain');
      await transport.publish('plain', [createMessage({ type: 'Counted', key: 'other', data: { n: 0 } })]);
      const subscription = transport.subscribe('plain', 'billing');
      const signal = new AbortController().signal;
      const handled: number[] = [];
      const meanwhile: string[] = [];
      const settle = (delivery: Delivery) =>
        delivery.ack().then(
          () => undefined,
          (error: Error) => errors.push(`ack: ${error.message}`),
        );
      let refused: { lift(): Promise<void> } | undefined;
      const deadline = Date.now() + 20_000;
      while (!(handled.includes(3) && (await pending(transport, 'plain')) === 0) && Date.now() < deadline) {
        // One at a time: what the transport hands out next.
        for (const delivery of await subscription.receive(1, 100, signal)) {
          if (delivery.message.key === 'k') handled.push(nOf(delivery));
          if (refused) {
            await settle(delivery);
            continue;
          }
          refused = await refuse(refusal);
          const acking = settle(delivery);
          // The refusal told (the ack's own rejection, or the transport's onError), and while it lasts what goes out.
          await waitUntil(() => errors.some((e) => e.includes(refusal)), `the ack refused with ${refusal}`);
          const others = await subscription.receive(10, 300, signal);
          meanwhile.push(...others.map((d) => d.message.key));
          handled.push(...others.flatMap((d) => (d.message.key === 'k' ? [nOf(d)] : [])));
          await refused.lift();
          await acking;
          for (const other of others) await settle(other);
        }
      }
      assert.ok(inOrder(handled), `the key's messages handled in order: ${handled.join(', ')}`);
      assert.deepEqual([...new Set(handled)], [1, 2, 3]);
      assert.deepEqual(meanwhile, ['other'], "while the ack was refused only another key's message went out");
      assert.equal(await pending(transport, 'plain'), 0, 'every entry acknowledged');
      await subscription.close();
    });
  }

  it("a receive waiting while the key is held gets its next message once the ack lands, not at its wait's end", async () => {
    const application = testApplication('refused-wake');
    const errors: string[] = [];
    // Reads and receives that wait 10 s: only a wake-up hands message 2 out sooner.
    const transport = await open(application, errors, 3000, 10_000);
    await publishThree(transport, 'woken');
    const subscription = transport.subscribe('woken', 'billing');
    const signal = new AbortController().signal;
    const [first] = await subscription.receive(1, 5000, signal);
    assert.equal(first && nOf(first), 1);
    const refused = await refuse('NOREPLICAS');
    try {
      const acking = first?.ack();
      await waitUntil(() => errors.some((e) => e.includes('NOREPLICAS')), 'the ack refused');
      const waiting = subscription.receive(1, 10_000, signal);
      // The receive waits (the key held) before the refusal ends.
      assert.equal(await settledWithin(waiting, 200), false, 'nothing of the key while its ack is refused');
      await refused.lift();
      const lifted = performance.now();
      await acking;
      assert.equal(await settledWithin(waiting, 3000), true, 'message 2 within 3 s of the ack landing');
      const [second] = await waiting;
      const after = performance.now() - lifted;
      assert.equal(second && nOf(second), 2);
      assert.ok(after < 3000, `handed out ${Math.round(after)} ms after the refusal ended`);
      await second?.ack();
    } finally {
      await refused.lift();
      await subscription.close();
    }
  });

  /**
   * Message 1 of `topic` handed out by a first transport, whose ack Redis refuses from then on; `end` ends the
   * retries (the lease running out, or a close). The ack must reject, nothing more of the key go out meanwhile,
   * and once writes are taken again a second transport must get the key's messages from 1 on, in order.
   */
  const refusedUntil = async (topic: string, end: (transport: RedisTransport) => Promise<unknown>) => {
    const application = testApplication('refused-end');
    const errors: string[] = [];
    const first = await open(application, errors, 1500);
    await publishThree(first, topic);
    const subscription = first.subscribe(topic, 'billing');
    const signal = new AbortController().signal;
    const [delivery] = await subscription.receive(1, 5000, signal);
    assert.equal(delivery && nOf(delivery), 1);
    const refused = await refuse('NOREPLICAS');
    try {
      let outcome: unknown;
      delivery?.ack().then(
        () => (outcome = 'acked'),
        (error: unknown) => (outcome = error),
      );
      await waitUntil(() => errors.some((e) => e.includes('NOREPLICAS')), 'the ack refused');
      assert.deepEqual(await subscription.receive(10, 200, signal), [], "nothing more of the key while it's refused");
      await end(first);
      await waitUntil(() => outcome !== undefined, 'the ack to give up', 5000);
      // Rejected with the refusal; or, where the lease ran out before the reader saw it lost, a last try found
      // the partition's lease gone: fenced off, which resolves as every fenced ack does (nothing acked).
      if (outcome !== 'acked') assert.match(String((outcome as Error).message), /NOREPLICAS/);
      // Out of the way of the second (it would take the partition again once writes are taken).
      await first.close();
    } finally {
      await refused.lift();
    }
    const second = await open(application, []);
    const again = second.subscribe(topic, 'billing');
    const handled: number[] = [];
    await waitUntil(
      async () => {
        for (const d of await again.receive(1, 100, signal)) {
          handled.push(nOf(d));
          await d.ack();
        }
        return handled.length >= 3;
      },
      "the key's messages at the next holder",
      15_000,
    );
    assert.deepEqual(handled, [1, 2, 3]);
    await again.close();
  };

  it('a refused ack tried again gives up when the lease runs out (renewals refused too): the next holder gets the entry first', async () => {
    await refusedUntil('lost', (first) =>
      waitUntil(() => first.heldPartitions('lost', 'billing').length === 0, 'the lease to run out', 10_000),
    );
  });

  it('a refused ack tried again does not hold a close: the transport closes, the ack rejects', async () => {
    await refusedUntil('closed', async (first) => {
      const closed = first.close();
      assert.equal(await settledWithin(closed, 3000), true, 'closed within 3 s');
    });
  });

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
