import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type Delivery, type Message, type Subscription, TransportError } from '@factline/core';
import { natsUnavailable, natsUrl, testApplication, useManager } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('pub_order');
const created: NatsTransport[] = [];
const never = new AbortController().signal;

after(async () => {
  await Promise.all(created.map((t) => t.close()));
});

describe('nats: a message of a publish refused by the stream, with later messages of its key', { skip }, () => {
  const manager = useManager(application);

  /** Sets the stream's `max_msg_size` as an operator would (-1: none). */
  const maxMessageSize = async (bytes: number) => {
    const info = await manager().streams.info(application);
    await manager().streams.update(application, { ...info.config, max_msg_size: bytes });
  };

  it("stores none of the key's later messages: its consumer never sees one past the refused one, nor after a retry", async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 1 });
    created.push(transport);
    await transport.declareSubscription('orders', 'billing');
    await maxMessageSize(2048);
    const of = (key: string, n: number, size = 0): Message =>
      createMessage({ type: 'OrderChanged', key, data: { n, padding: 'x'.repeat(size) } });
    // o-1's second message is over the stream's max_msg_size; o-2's messages are not behind it.
    const batch = [of('o-1', 1), of('o-2', 1), of('o-1', 2, 4096), of('o-1', 3), of('o-2', 2), of('o-1', 4)];
    const error = await transport.publish('orders', batch).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TransportError, String(error));
    assert.match(String((error.cause as Error | undefined)?.message), /maximum|size/i);
    const stored = async () => (await manager().streams.info(application)).state.messages;
    /** What the stream holds of `key`, in stream order: each message's `n`. */
    const storedOf = async (key: string) => {
      const { state } = await manager().streams.info(application);
      const found: number[] = [];
      for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
        const message = JSON.parse((await manager().streams.getMessage(application, { seq }))?.string() ?? '{}');
        if (message.key === key) found.push(message.data.n);
      }
      return found;
    };
    assert.deepEqual(await storedOf('o-1'), [1], "none of o-1's messages after the refused one stored");
    // o-2's first went before the refused one; its second, after it in the call, waited with it.
    assert.deepEqual(await storedOf('o-2'), [1]);

    // The operator raises the limit; the caller (a relay) publishes the call again.
    await maxMessageSize(-1);
    await transport.publish('orders', batch);
    assert.equal(await stored(), batch.length, 'each message stored once (the repeats dropped by Nats-Msg-Id)');

    const subscription = transport.subscribe('orders', 'billing');
    try {
      const got = await receiveUntil(subscription, batch.length, 10_000);
      await Promise.all(got.map((d) => d.ack()));
      const order = (key: string) =>
        got.filter((d) => d.message.key === key).map((d) => (d.message.data as { n: number }).n);
      assert.deepEqual(order('o-1'), [1, 2, 3, 4], "o-1's messages in publish order");
      assert.deepEqual(order('o-2'), [1, 2], "o-2's messages in publish order");
    } finally {
      await subscription.close();
    }
  });
});

/** Receives until `count` deliveries came or the deadline passed. */
async function receiveUntil(subscription: Subscription, count: number, deadlineMs: number): Promise<Delivery[]> {
  const got: Delivery[] = [];
  const deadline = Date.now() + deadlineMs;
  while (got.length < count && Date.now() < deadline) got.push(...(await subscription.receive(10, 200, never)));
  return got;
}
