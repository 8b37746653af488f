import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { brokerRestartRun } from '../../../sqlite/src/outbox/fixtures/broker-restart.ts';
import { startPrivateNode } from '../fixtures/private-node.ts';
import { testApplication } from '../fixtures/server.ts';
import { getRabbitTransport } from './rabbitmq-transport.ts';

// A broker restart mid-run, on a private node: a producer writing to the SQLite outbox, its relay
// publishing to RabbitMQ, three consumer processes; the broker application stops and starts again
// (the scenario: broker-restart.ts).
const node = await startPrivateNode();
const skip = 'reason' in node ? `no private RabbitMQ node: ${node.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const restart = brokerRestartRun('rabbit');

after(async () => {
  await restart.cleanUp();
  if (!('reason' in node)) await node.stop();
});

describe('rabbitmq: the broker restarts mid-run', { skip }, () => {
  it('outbox relay and three consumer processes ride it out: every message applied once, per-key order held', async () => {
    if ('reason' in node) return;
    const application = testApplication('restart');
    await restart.run({
      url: node.url,
      application,
      childScript: new URL('./fixtures/consumer-child.ts', import.meta.url).pathname,
      openTransport: (partitions) =>
        getRabbitTransport({ url: node.url, application, partitions, reconnectMinMs: 100, reconnectMaxMs: 500 }),
      stopBroker: () => node.stopApp(),
      startBroker: () => node.startApp(),
    });
  });
});

describe('rabbitmq: a memory alarm', { skip }, () => {
  it('a publish the blocked broker does not confirm rejects after publishTimeoutMs, retryable; it goes through once the alarm clears', async () => {
    if ('reason' in node) return;
    const transport = await getRabbitTransport({
      url: node.url,
      application: testApplication('alarm'),
      partitions: 1,
      publishTimeoutMs: 1500,
    });
    try {
      await transport.declareSubscription('orders', 'billing');
      await node.memoryAlarm(true);
      const started = performance.now();
      await assert.rejects(
        settlesWithin(
          transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]),
          20_000,
          'the publish during the alarm',
        ),
        (error: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(error.code, 'TRANSPORT');
          assert.equal(error.retryable, true);
          assert.match(error.message, /within 1500 ms.*alarm/);
          return true;
        },
      );
      assert.ok(performance.now() - started >= 1400);
      await node.memoryAlarm(false);
      await waitUntil(
        () =>
          transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]).then(
            () => true,
            () => false,
          ),
        'a publish confirmed once the alarm cleared',
        30_000,
      );
    } finally {
      await node.memoryAlarm(false).catch(() => undefined);
      await transport.close();
    }
  });

  it('a publish blocked by the alarm leaves the subscriptions receiving and acking', async () => {
    if ('reason' in node) return;
    const transport = await getRabbitTransport({
      url: node.url,
      application: testApplication('alarm_consume'),
      partitions: 1,
      prefetch: 5,
      publishTimeoutMs: 1500,
    });
    const subscription = transport.subscribe('orders', 'billing');
    try {
      await transport.declareSubscription('orders', 'billing');
      const sent = Array.from({ length: 40 }, (_, i) => createMessage({ type: 'Placed', key: `k${i}`, data: {} }));
      await transport.publish('orders', sent);
      await node.memoryAlarm(true);
      // The broker blocks the connection this publish goes on, until the alarm clears.
      await assert.rejects(transport.publish('orders', [createMessage({ type: 'Placed', data: {} })]), {
        code: 'TRANSPORT',
      });
      // Eight times the prefetch: only acks reaching the broker let the rest come.
      const received = new Set<string>();
      await waitUntil(
        async () => {
          for (const delivery of await subscription.receive(10, 100, new AbortController().signal)) {
            await delivery.ack();
            received.add(delivery.message.id);
          }
          return received.size === sent.length;
        },
        'every message received and acked during the alarm',
        15_000,
      );
    } finally {
      await node.memoryAlarm(false).catch(() => undefined);
      await subscription.close();
      await transport.close();
    }
  });
});
