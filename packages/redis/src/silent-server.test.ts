import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { startForwarder } from './fixtures/forwarder.ts';
import { privateServersForFile, startBilling } from './fixtures/private-file.ts';
import type { PrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';

// A Redis that stops answering without closing the connections (its host gone, a network dropping packets):
// the connections stay open and a command already sent never gets an answer, until the operating system's TCP
// timeout, many minutes later. Through a TCP forwarder that stops passing data, a private server behind it.
// The consumer's stop, the transport's close and the inbox's close still resolve, within their bounds
// (the readers' 5 s for deliveries out plus CLOSE_WAIT_MS, 5 s), and say what they gave up.
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
    assert.ok(
      reports.some((r) => /stopped without Redis answering within 5000 ms/.test(r)),
      `the reader's stop said what it gave up: ${reports.join(' | ')}`,
    );
    assert.ok(
      reports.some((r) => /did not answer within 5000 ms while the transport closed/.test(r)),
      `the transport's close said so: ${reports.join(' | ')}`,
    );
    assert.ok(
      reports.some((r) => /did not answer within 5000 ms while the inbox closed/.test(r)),
      `the inbox's close said so: ${reports.join(' | ')}`,
    );
  });
});
