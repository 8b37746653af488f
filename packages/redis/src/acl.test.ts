import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage, type Message } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { privateServersForFile } from './fixtures/private-file.ts';
import type { PrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { getRedisInbox } from './messaging/redis-inbox.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

// The transport, the inbox and the dead letters under a least-privilege ACL user (a private server, so that
// the shared one's users are never changed): every key it may touch starts with `<app>:`, and no command of
// the `@dangerous` category is allowed (among them INFO and CLIENT UNBLOCK). The application works: its keys
// all start with `<app>:`, the server checks at open are skipped without INFO, and a read that could have
// been cut short with CLIENT UNBLOCK waits out its block instead.
const {
  servers: [server],
  skip,
  closeLater,
} = await privateServersForFile({});

describe('redis: under an ACL user limited to the application keys, without @dangerous', { skip }, () => {
  it('publishes, consumes with the Redis inbox in per-key order, dead-letters, redrives and stops, with no command refused', async () => {
    const { url: adminUrl, port } = server as PrivateServer;
    const application = testApplication('acl');
    const admin = createClient({ url: adminUrl });
    admin.on('error', () => undefined);
    await admin.connect();
    closeLater(() => admin.close());
    await admin.sendCommand([
      'ACL',
      'SETUSER',
      'shop-app',
      'on',
      '>app-secret',
      'resetkeys',
      `~${application}:*`,
      'resetchannels',
      '+@all',
      '-@dangerous',
    ]);
    const url = `redis://shop-app:app-secret@127.0.0.1:${port}`;
    // The user cannot do what the test relies on it not doing.
    const probe = createClient({ url });
    probe.on('error', () => undefined);
    await probe.connect();
    await assert.rejects(probe.sendCommand(['INFO']), /NOPERM/);
    await assert.rejects(probe.sendCommand(['SET', 'elsewhere', '1']), /NOPERM/);
    await probe.close();

    const reports: string[] = [];
    const onError = (error: unknown) => reports.push(String(error));
    const transport = await getRedisTransport({ url, application, partitions: 2, leaseMs: 2000, onError });
    closeLater(() => transport.close());
    const inbox = await getRedisInbox({ url, application, onError });
    closeLater(() => inbox.close());
    const handled: Message[] = [];
    let fixed = false;
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox,
      maxRetries: 2,
      retryDelay: [20, 50],
      onError: (error) => {
        if (!/poison/.test(String(error))) reports.push(String(error));
      },
      handler(message) {
        if (message.type === 'Poison' && !fixed) throw new Error('poison');
        handled.push(message);
      },
    });
    await consumer.start();
    const messages = Array.from({ length: 30 }, (_, i) =>
      createMessage({ type: 'Placed', key: `k-${i % 5}`, data: { n: i } }),
    );
    const poison = createMessage({ type: 'Poison', key: 'k-bad', data: {} });
    await transport.publish('orders', [...messages.slice(0, 10), poison, ...messages.slice(10)]);
    await waitUntil(() => handled.length === messages.length, 'the 30 messages handled', 15_000);
    await waitUntil(() => consumer.stats().deadLettered === 1, 'the poison message dead-lettered', 15_000);
    for (let k = 0; k < 5; k++) {
      const order = handled.filter((m) => m.key === `k-${k}`).map((m) => (m.data as { n: number }).n);
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        `per-key order of k-${k}`,
      );
    }
    const [record] = await consumer.deadLetters.list();
    assert.equal(record?.message.id, poison.id);
    assert.equal(record?.attempts, 3);
    fixed = true;
    assert.equal(await consumer.deadLetters.redrive(record?.id as string), 1);
    await waitUntil(() => handled.some((m) => m.id === poison.id), 'the redriven message handled', 15_000);
    await consumer.stop();

    assert.deepEqual(
      handled.map((m) => m.id).sort(),
      [...messages, poison].map((m) => m.id).sort(),
      'each message handled once',
    );
    assert.deepEqual(
      reports.filter((r) => /NOPERM|permission/i.test(r)),
      [],
      'no command was refused',
    );
    // Every key the application wrote starts with `<app>:` (the ACL allowed no other), and there are some.
    const keys = (await admin.sendCommand(['KEYS', '*'])) as string[];
    assert.ok(keys.length > 0);
    assert.deepEqual(
      keys.filter((key) => !key.startsWith(`${application}:`)),
      [],
    );
  });
});
