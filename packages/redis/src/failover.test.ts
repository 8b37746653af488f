import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, isFactlineError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { startForwarder } from '../../core/src/testing/fixtures/forwarder.ts';
import { privateServersForFile, startBilling } from './fixtures/private-file.ts';
import type { PrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';

// A failover behind a name that follows the primary (a managed service's primary endpoint, a DNS record),
// on two private redis-servers: A the primary, B its replica. The application connects through a TCP
// forwarder standing in for that name: connections made before the failover stay on A, new ones reach B.
// After the failover A is B's replica and answers the application's writes with READONLY; the transport
// and the inbox drop those connections and make them again, which reaches B, and the run goes on.
const { servers, skip, closeLater } = await privateServersForFile({}, {});

const admin = async (url: string) => {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  closeLater(() => client.close());
  return client;
};

const infoField = async (client: Awaited<ReturnType<typeof admin>>, name: string) =>
  new RegExp(`^${name}:(.*?)\\s*$`, 'm').exec(String(await client.sendCommand(['INFO', 'replication'])))?.[1];

describe('redis: a failover behind a name that follows the primary', { skip }, () => {
  it('a primary demoted under a running consumer: the transport and the inbox reconnect on READONLY and reach the new primary; every message is handled once, in per-key order', async () => {
    const [a, b] = servers as [PrivateServer, PrivateServer];
    let primary = a.port;
    const forwarder = await startForwarder(() => primary);
    closeLater(() => forwarder.close());
    const url = `redis://127.0.0.1:${forwarder.port}`;
    const [adminA, adminB] = [await admin(a.url), await admin(b.url)];
    await adminB.sendCommand(['REPLICAOF', '127.0.0.1', String(a.port)]);
    await waitUntil(async () => (await infoField(adminB, 'master_link_status')) === 'up', 'B replicating A');

    const application = testApplication('failover');
    const reports: string[] = [];
    const onError = (error: unknown) => reports.push(String(error));
    const { transport, handled } = await startBilling(url, application, {
      leaseMs: 3000,
      reconnectMaxMs: 500,
      onError,
      consumer: { maxRetries: 20, retryDelay: [50, 200] },
      closeLater,
    });
    const batch = (from: number) =>
      Array.from({ length: 20 }, (_, i) =>
        createMessage({ type: 'Placed', key: `k-${(from + i) % 4}`, data: { n: from + i } }),
      );
    const before = batch(0);
    await transport.publish('orders', before);
    await waitUntil(() => handled.length >= before.length, 'the messages published before the failover handled');

    // Nothing in flight on A that B lacks, then the failover: the name moves to B, B is promoted, A follows it.
    await waitUntil(
      async () => (await infoField(adminA, 'master_repl_offset')) === (await infoField(adminB, 'master_repl_offset')),
      'B caught up with A',
    );
    primary = b.port;
    await adminB.sendCommand(['REPLICAOF', 'NO', 'ONE']);
    await adminA.sendCommand(['REPLICAOF', '127.0.0.1', String(b.port)]);

    const afterwards = batch(20);
    const refusals: string[] = [];
    await waitUntil(
      () =>
        transport.publish('orders', afterwards).then(
          () => true,
          (error: unknown) => {
            assert.ok(isFactlineError(error) && error.retryable, `a publish during the failover: ${String(error)}`);
            refusals.push(String(error));
            return false;
          },
        ),
      'a publish accepted after the failover',
      15_000,
      50,
    );
    await waitUntil(
      () => handled.length >= before.length + afterwards.length,
      'the messages published after the failover handled',
      20_000,
    );

    const ids = handled.map((m) => m.id);
    assert.deepEqual(
      [...ids].sort(),
      [...before, ...afterwards].map((m) => m.id).sort(),
      'every message handled, none twice',
    );
    for (const key of ['k-0', 'k-1', 'k-2', 'k-3']) {
      const order = handled.filter((m) => m.key === key).map((m) => (m.data as { n: number }).n);
      assert.deepEqual(
        order,
        [...order].sort((x, y) => x - y),
        `per-key order of ${key}`,
      );
    }
    assert.ok(
      reports.some((r) => /answered READONLY \(a replica now, as after a failover\): reconnecting/.test(r)),
      `the reconnect was reported: ${reports.join(' | ')}`,
    );
    // Every connection of the application is on B now: none is left on A.
    const names = async (client: Awaited<ReturnType<typeof admin>>) =>
      String(await client.sendCommand(['CLIENT', 'LIST']))
        .split('\n')
        .flatMap((line) => /name=(\S+)/.exec(line)?.[1] ?? [])
        .filter((name) => name.startsWith(`factline-${application}`));
    assert.deepEqual(await names(adminA), [], 'no connection of the application left on the demoted server');
    assert.ok((await names(adminB)).length >= 2, 'the transport and the inbox are connected to the new primary');
    assert.ok(refusals.length <= 20, `publishes refused while the connections moved: ${refusals.length}`);
  });
});
