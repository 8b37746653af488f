import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, isFactlineError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { refusedWith } from '../../core/src/testing/fixtures/transport-checks.ts';
import { startPrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { getRedisInbox } from './messaging/redis-inbox.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

// Servers the transport and the inbox cannot work on, each a private redis-server: a Redis Cluster node,
// a Sentinel, a replica, and a server that evicts keys when full (unless told to accept it). Each is refused
// when the transport or the inbox opens, with an error naming what the server is and what to give instead,
// and nothing is left open (the file's process ends on its own).
const modes = ['cluster', 'sentinel', 'replica'] as const;
const servers = await Promise.all([
  ...modes.map((mode) => startPrivateServer({ mode })),
  startPrivateServer({ maxmemoryPolicy: 'allkeys-lru' }),
  startPrivateServer(),
]);
const skip = servers.map((s) => ('reason' in s ? s.reason : '')).find(Boolean) || false;
after(async () => {
  await Promise.all(servers.map((s) => ('reason' in s ? undefined : s.stop())));
});

const expected: Record<(typeof modes)[number], RegExp> = {
  cluster: /is a Redis Cluster node \(redis_mode:cluster\): .*need a standalone server or a primary with replicas/,
  sentinel: /is a Redis Sentinel \(redis_mode:sentinel\): give the URL of the primary it monitors/,
  replica:
    /is a replica \(role:slave\), which takes no writes of its own: give the URL of its primary \(127\.0\.0\.1:1\)/,
};

describe('servers the Redis transport and inbox cannot use', { skip }, () => {
  modes.forEach((mode, i) => {
    it(`a ${mode === 'cluster' ? 'Redis Cluster node' : mode} is refused when the transport and the inbox open`, async () => {
      const server = servers[i] as { url: string };
      const application = testApplication(`mode_${mode}`);
      await assert.rejects(
        getRedisTransport({ url: server.url, application, connectTimeoutMs: 3000 }),
        refusedWith(expected[mode]),
      );
      await assert.rejects(
        getRedisInbox({ url: server.url, application, connectTimeoutMs: 3000 }),
        refusedWith(expected[mode]),
      );
    });
  });

  it('a server that evicts keys when full is refused unless allowEviction: true, which opens and works', async () => {
    const server = servers[3] as { url: string };
    const application = testApplication('mode_evicting');
    const pattern = /evicts keys when full \(maxmemory 64\.00M, maxmemory-policy allkeys-lru\).*allowEviction: true/;
    await assert.rejects(getRedisTransport({ url: server.url, application }), refusedWith(pattern));
    await assert.rejects(getRedisInbox({ url: server.url, application }), refusedWith(pattern));
    const transport = await getRedisTransport({ url: server.url, application, allowEviction: true });
    const inbox = await getRedisInbox({ url: server.url, application, allowEviction: true });
    try {
      const message = createMessage({ type: 'Placed', key: 'k-1', data: {} });
      const subscription = transport.subscribe('orders', 'billing');
      await transport.publish('orders', [message]);
      const [delivery] = await subscription.receive(1, 5000, new AbortController().signal);
      assert.equal(delivery?.message.id, message.id);
      assert.equal(await inbox.applyOnce?.('billing', message.id, new Date(), () => undefined, delivery), true);
      await subscription.close();
    } finally {
      await inbox.close();
      await transport.close();
    }
  });

  it('a primary turned replica under an open transport (a failover): publishes are refused, retryable, saying so; they pass again once it is primary', async () => {
    const server = servers[4] as { url: string };
    const application = testApplication('mode_failover');
    const transport = await getRedisTransport({ url: server.url, application });
    const admin = createClient({ url: server.url });
    admin.on('error', () => undefined);
    await admin.connect();
    try {
      await transport.declareSubscription('orders', 'billing');
      await transport.publish('orders', [createMessage({ type: 'Placed', key: 'k-1', data: {} })]);
      await admin.sendCommand(['REPLICAOF', '127.0.0.1', '1']);
      await assert.rejects(
        transport.publish('orders', [createMessage({ type: 'Placed', key: 'k-2', data: {} })]),
        (error: Error & { retryable?: boolean }) => {
          assert.ok(isFactlineError(error), String(error));
          assert.equal(error.retryable, true, error.message);
          assert.match(
            error.message,
            /READONLY .*\(the server is a replica now, as after a failover: the URL must name the primary\)$/,
          );
          return true;
        },
      );
      await admin.sendCommand(['REPLICAOF', 'NO', 'ONE']);
      // The READONLY reply made the transport reconnect: a publish sent meanwhile may fail with the dropped connection.
      const again = createMessage({ type: 'Placed', key: 'k-3', data: {} });
      await waitUntil(
        () =>
          transport.publish('orders', [again]).then(
            () => true,
            (error: unknown) => {
              assert.ok(isFactlineError(error) && error.retryable, String(error));
              return false;
            },
          ),
        'a publish accepted once the server is primary again',
        10_000,
        20,
      );
    } finally {
      await admin.close();
      await transport.close();
    }
  });
});
