import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import amqp from 'amqplib';
import { type Forwarder, startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { CLOSE_WAIT_MS } from '../connection.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

const skip = await rabbitUnavailable();
const never = () => new AbortController().signal;
const created: RabbitTransport[] = [];
const forwarders: Forwarder[] = [];

/** A transport of its own application reaching the shared broker through a forwarder; `onError` kept as text. */
async function throughForwarder(label: string, told?: (line: string, forwarder: Forwarder) => void) {
  const forwarder = await startForwarder(() => 5672);
  forwarders.push(forwarder);
  const errors: string[] = [];
  const application = testApplication(label);
  const transport = await getRabbitTransport({
    url: `amqp://guest:guest@127.0.0.1:${forwarder.port}`,
    application,
    partitions: 1,
    reconnectMinMs: 100,
    reconnectMaxMs: 200,
    onError: (error, { stage }) => {
      const line = `${stage}: ${(error as Error).message}`;
      errors.push(line);
      told?.(line, forwarder);
    },
  });
  created.push(transport);
  return { forwarder, transport, application, errors };
}

/** Changes the broker behind the transport's back, on a connection of its own (not through the forwarder). */
async function asAdmin(change: (channel: amqp.Channel) => Promise<unknown>): Promise<void> {
  const admin = await amqp.connect(amqpUrl);
  try {
    await change(await admin.createChannel());
  } finally {
    await admin.close();
  }
}

/** How long `work` took to settle (resolved or rejected), failing once `ms` passed without it. */
async function timeToSettle(work: Promise<unknown>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  await settlesWithin(
    work.then(
      () => undefined,
      () => undefined,
    ),
    ms,
    what,
  );
  return Date.now() - start;
}

describe('rabbitmq closes bounded (a broker that stops answering or goes away mid-close)', { skip }, () => {
  after(async () => {
    await Promise.allSettled(created.map((transport) => transport.close()));
    await Promise.allSettled(forwarders.map((forwarder) => forwarder.close()));
    await removeTopology(created);
  });

  it('close() resolves within its bound when nothing passes any more, and onError says the close did not complete', async () => {
    const { forwarder, transport, errors } = await throughForwarder('close_frozen');
    const subscription = transport.subscribe('orders', 'billing');
    await transport.declareSubscription('orders', 'billing');
    await transport.publish('orders', [createMessage({ type: 'Placed', key: 'k', data: {} })]);
    await waitUntil(
      async () => {
        const [delivery] = await subscription.receive(1, 100, never());
        if (delivery) await delivery.ack();
        return delivery !== undefined;
      },
      'the subscription to receive through the forwarder',
      15_000,
    );
    forwarder.freeze();
    // The group's channel and the connection, each waiting at most CLOSE_WAIT_MS for the broker.
    await timeToSettle(transport.close(), 2 * CLOSE_WAIT_MS + 3000, 'transport.close()');
    assert.ok(
      errors.some((e) => /did not confirm closing/.test(e)),
      `onError told the close did not complete: ${JSON.stringify(errors)}`,
    );
  });

  it('a group channel closed after the server cancelled its consumer, that never answers: its close gives up after CLOSE_WAIT_MS, told, and close() stays bounded', async () => {
    // The broker stops answering as the reader hears of the cancel: the channel's close never gets its close-ok.
    const { transport, application, errors } = await throughForwarder('close_cancel', (line, forwarder) => {
      if (/cancelled the consumer/.test(line)) forwarder.freeze();
    });
    const subscription = transport.subscribe('orders', 'billing');
    await transport.declareSubscription('orders', 'billing');
    await transport.publish('orders', [createMessage({ type: 'Placed', key: 'k', data: {} })]);
    await waitUntil(
      async () => {
        const [delivery] = await subscription.receive(1, 100, never());
        if (delivery) await delivery.ack();
        return delivery !== undefined;
      },
      'the subscription to receive through the forwarder',
      15_000,
    );
    await asAdmin((channel) => channel.deleteQueue(topologyNames(application).groupQueue('orders', 'billing', 0)));
    await waitUntil(
      () => errors.some((e) => /did not confirm closing the channel of orders\/billing/.test(e)),
      'the given-up close told',
      CLOSE_WAIT_MS + 5000,
    );
    // Its restart waits on the silent broker too: close() gives that up as well, told.
    await timeToSettle(transport.close(), 3 * CLOSE_WAIT_MS + 3000, 'transport.close()');
    assert.ok(
      errors.some((e) => /did not answer the start of the reader of orders\/billing/.test(e)),
      JSON.stringify(errors),
    );
  });

  it('close() resolves as soon as its connection is reset while it waits for the broker to confirm', async () => {
    const { forwarder, transport } = await throughForwarder('close_reset');
    await transport.publish('orders', [createMessage({ type: 'Placed', key: 'k', data: {} })]);
    forwarder.freeze();
    const closing = transport.close();
    // It tells itself disconnected as it sends the connection's close: from then on it waits for the close-ok.
    await waitUntil(() => !transport.connected(), 'the transport to start closing its connection', 5000);
    forwarder.reset();
    const took = await timeToSettle(closing, CLOSE_WAIT_MS - 1000, 'transport.close()');
    assert.ok(took < CLOSE_WAIT_MS - 1000, `took ${took} ms`);
  });

  it('a connection lost while the partition-count check closes its channel: that publish settles and later ones go through', async () => {
    const { forwarder, transport, application } = await throughForwarder('close_count');
    const record = topologyNames(application).partitionCount('orders');
    // Answers come late: the check's channel close is sent, its close-ok held when the connection drops.
    forwarder.delayReplies(400);
    const first = transport.publish('orders', [createMessage({ type: 'Placed', key: 'k', data: {} })]);
    first.catch(() => undefined);
    await waitUntil(() => transport.declared.queues.has(record), 'the partition count to be recorded', 15_000);
    forwarder.delayReplies(0);
    forwarder.reset();
    await timeToSettle(first, 10_000, 'the publish during the drop');
    // Once reconnected, a publish goes through (it waited for ever on the check that never settled).
    await waitUntil(
      () =>
        settlesWithin(
          transport.publish('orders', [createMessage({ type: 'Placed', key: 'k', data: {} })]),
          5000,
          'a publish after the drop',
        ).then(
          () => true,
          (error: Error) => {
            if ((error as { retryable?: boolean }).retryable !== true) throw error;
            return false;
          },
        ),
      'a publish to go through after the reconnect',
      15_000,
      50,
    );
  });
});
