import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { startForwarder } from '../../core/src/testing/fixtures/forwarder.ts';
import { privateServersForFile, startBilling } from './fixtures/private-file.ts';
import type { PrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { redisKeys } from './keys.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

// A Redis that stops answering without closing the connections (its host gone, a network dropping packets):
// the connections stay open and a command already sent never gets an answer, until the operating system's TCP
// timeout, many minutes later. Through a TCP forwarder that stops passing data, a private server behind it.
// The consumer's stop, the transport's close and the inbox's close still resolve, within their bounds
// (the readers' 5 s for deliveries out plus CLOSE_WAIT_MS, 5 s; the silence watch drops a connection whose
// commands waited SILENCE_MS, 10 s), and say what they gave up; once the path answers again, the consumer goes on.
const {
  servers: [server],
  skip,
  closeLater,
} = await privateServersForFile({});

describe('redis: a server that stops answering without closing the connections', { skip }, () => {
  it("told while it runs; a running consumer's stop, the transport's close and the inbox's close resolve in bounded time, reported", async () => {
    const { port } = server as PrivateServer;
    const forwarder = await startForwarder(() => port);
    closeLater(() => forwarder.close());
    const url = `redis://127.0.0.1:${forwarder.port}`;
    const application = testApplication('silent');
    const reports: string[] = [];
    const onError = (error: unknown) => reports.push(String(error));
    const { transport, inbox, consumer, handled } = await startBilling(url, application, {
      leaseMs: 3000,
      onError,
      consumer: { drainTimeoutMs: 1000 },
      closeLater,
    });
    await transport.publish(
      'orders',
      Array.from({ length: 10 }, (_, i) => createMessage({ type: 'Placed', key: `k-${i % 3}`, data: { n: i } })),
    );
    await waitUntil(() => handled.length === 10, 'the messages handled');

    forwarder.freeze();
    await waitUntil(
      () => reports.some((r) => /has not answered the lease renewal of orders\/billing for 3000 ms/.test(r)),
      'the silence told while the consumer runs',
      10_000,
      20,
    );
    // A publish now waits for an answer that never comes (it is not the subject here); the lease ticks do too.
    void transport.publish('orders', [createMessage({ type: 'Placed', key: 'k-0', data: {} })]).catch(() => undefined);
    // So does an inbox read: the inbox's close has a command to wait for, as when a run's mark or renewal is away.
    void inbox.has('billing', 'unanswered').catch(() => undefined);
    const started = Date.now();
    await settlesWithin(consumer.stop(), 20_000, 'consumer.stop()');
    await settlesWithin(transport.close(), 20_000, 'transport.close()');
    await settlesWithin(inbox.close(), 20_000, 'inbox.close()');
    const took = Date.now() - started;
    assert.ok(took < 40_000, `stopping took ${took} ms`);
    // What gave up on Redis says so: the silence watch dropping a connection (after SILENCE_MS, 10 s), or a stop or
    // a close that stopped waiting first, whichever came first.
    assert.ok(
      reports.some((r) =>
        /sent nothing back for 10000 ms|stopped without Redis answering within 5000 ms|did not answer within 5000 ms while the (transport|inbox) closed/.test(
          r,
        ),
      ),
      `what was given up was told: ${reports.join(' | ')}`,
    );
  });
  it('a consumer goes on once the path answers again: its silent connections are dropped and made again, each message handled once', async () => {
    const { port } = server as PrivateServer;
    const forwarder = await startForwarder(() => port);
    closeLater(() => forwarder.close());
    const application = testApplication('silent-back');
    const reports: string[] = [];
    const onError = (error: unknown) => reports.push(String(error));
    const { handled } = await startBilling(`redis://127.0.0.1:${forwarder.port}`, application, {
      leaseMs: 3000,
      reconnectMaxMs: 500,
      onError,
      consumer: { maxRetries: 100, retryDelay: 50 },
      closeLater,
    });
    // Published straight to the server, as by another service whose path did not fail.
    const publisher = await getRedisTransport({ url: `redis://127.0.0.1:${port}`, application, partitions: 2 });
    closeLater(() => publisher.close());
    const batch = (from: number) =>
      Array.from({ length: 10 }, (_, i) =>
        createMessage({ type: 'Placed', key: `k-${(from + i) % 3}`, data: { n: from + i } }),
      );
    await publisher.publish('orders', batch(0));
    await waitUntil(() => handled.length === 10, 'the messages handled');
    // Settled too (marked, and acked with the mark): a freeze between a handler and its mark would run the
    // handler again, the Redis inbox's documented at-least-once for effects outside Redis.
    const keys = redisKeys(application);
    const direct = createClient({ url: `redis://127.0.0.1:${port}` });
    await direct.connect();
    closeLater(() => direct.close());
    const pending = async () => {
      let count = 0;
      for (let p = 0; p < 2; p++) {
        const [waiting] = (await direct.sendCommand(['XPENDING', keys.stream('orders', p), 'billing'])) as [number];
        count += Number(waiting);
      }
      return count;
    };
    await waitUntil(async () => (await pending()) === 0, 'the first messages marked and acked');

    forwarder.freeze();
    await publisher.publish('orders', batch(10));
    await waitUntil(
      () => reports.some((r) => /has not answered the lease renewal/.test(r)),
      'the silence told while the consumer runs',
      10_000,
      20,
    );
    forwarder.thaw();
    await waitUntil(() => handled.length >= 20, 'the messages published while silent handled', 60_000, 50);
    assert.ok(
      reports.some((r) =>
        /sent nothing back for 10000 ms while \d+ command\(s\) waited: the connection is dropped and made again/.test(
          r,
        ),
      ),
      `the drop told: ${reports.join(' | ')}`,
    );
    const numbers = handled.map((m) => (m.data as { n: number }).n);
    assert.deepEqual(
      [...numbers].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, n) => n),
      'each message handled once',
    );
    for (const key of ['k-0', 'k-1', 'k-2']) {
      const ofKey = handled.filter((m) => m.key === key).map((m) => (m.data as { n: number }).n);
      assert.deepEqual(
        ofKey,
        [...ofKey].sort((a, b) => a - b),
        `${key} in order`,
      );
    }
  });
});
