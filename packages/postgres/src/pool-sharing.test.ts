import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage, isTimeoutError } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from './fixtures/server.ts';
import { getPostgresInbox } from './messaging/postgres-consumer-stores.ts';
import { getPostgresTransport } from './messaging/postgres-transport.ts';
import { connectionWaitMs, DEFAULT_CONNECTION_WAIT_MS } from './pool-ledger.ts';
import { getPostgresEventStore } from './store/postgres-event-store.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;
const schemas: string[] = [];
const pools: pg.Pool[] = [];

/** A caller's pool; `end` in after() does not wait for clients a hung test may still hold. */
function pool(config: pg.PoolConfig): pg.Pool {
  const created = new pg.Pool({ connectionString: postgresUrl, ...config });
  created.on('error', () => undefined);
  pools.push(created);
  return created;
}

function schema(label: string): string {
  const name = testSchema(label);
  schemas.push(name);
  return name;
}

describe('components sharing one pg pool', { skip, timeout: 60_000 }, () => {
  after(async () => {
    for (const p of pools) {
      // A pool whose clients are stuck would never end: close their sockets instead.
      for (const client of (p as unknown as { _clients: pg.PoolClient[] })._clients ?? []) {
        (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      }
      await settlesWithin(p.end(), 5000, 'pool.end').catch(() => undefined);
    }
    for (const name of schemas) await dropSchema(name);
  });

  it('two stores on a pool of 2, both having written: reads of both settle, and more appends too', async () => {
    const shared = pool({ max: 2 });
    const first = await getPostgresEventStore({ pool: shared, schema: schema('share_a') });
    const second = await getPostgresEventStore({ pool: shared, schema: schema('share_b') });
    await first.append('acct-1', [{ type: 'Opened', data: {} }]);
    await second.append('acct-1', [{ type: 'Opened', data: {} }]);
    const [a, b] = await settlesWithin(
      Promise.all([first.readStream('acct-1'), second.readStream('acct-1')]),
      10_000,
      'reads of two stores sharing a pool of 2',
    );
    assert.equal(a.version, 1);
    assert.equal(b.version, 1);
    await settlesWithin(
      Promise.all([first.append('acct-2', [{ type: 'Opened', data: {} }]), second.headPosition()]),
      10_000,
      'an append and a read after them',
    );
    await first.close();
    await second.close();
  });

  it('a store, a transport and an inbox on a pool of 2: a handler that reads the store runs, for every message', async () => {
    const shared = pool({ max: 2 });
    const name = schema('share_c');
    const store = await getPostgresEventStore({ pool: shared, schema: name });
    const transport = await getPostgresTransport({ pool: shared, schema: name, listen: false, pollIntervalMs: 20 });
    const inbox = await getPostgresInbox({ pool: shared, schema: name });
    await store.append('acct-1', [{ type: 'Opened', data: {} }]);
    const seen: number[] = [];
    const consumer = createConsumer({
      name: 'reader',
      topic: 'accounts',
      transport,
      inbox,
      handler: async (_message, client: pg.PoolClient) => {
        const { version } = await store.readStream('acct-1');
        await client.query('SELECT 1');
        seen.push(version);
      },
    });
    await consumer.start();
    await transport.publish(
      'accounts',
      Array.from({ length: 5 }, (_, i) => createMessage({ type: 'Checked', data: { i }, key: `k${i}` })),
    );
    await waitUntil(() => seen.length === 5, 'five handlers that read the store', 10_000);
    assert.deepEqual(seen, [1, 1, 1, 1, 1]);
    await settlesWithin(consumer.stop(), 10_000, 'consumer.stop');
    await transport.close();
    await inbox.close();
    await store.close();
  });

  it('a wait for a connection is bounded: every connection held elsewhere is a TimeoutError, not a hang', async () => {
    const shared = pool({ max: 1, connectionTimeoutMillis: 300 });
    const store = await getPostgresEventStore({ pool: shared, schema: schema('share_d') });
    const blocker = await shared.connect();
    try {
      const error = await settlesWithin(
        store.readStream('acct-1').then(
          () => assert.fail('the read found a connection the test holds'),
          (e: unknown) => e,
        ),
        10_000,
        'a read with every connection held',
      );
      assert.ok(isTimeoutError(error), `expected a TimeoutError, got ${String(error)}`);
    } finally {
      blocker.release();
    }
    assert.equal((await store.readStream('acct-1')).version, 0);
    await store.close();
  });

  it('a pool given without connectionTimeoutMillis gets the default bound', async () => {
    const shared = pool({ max: 1 });
    assert.equal(connectionWaitMs(shared), DEFAULT_CONNECTION_WAIT_MS);
    const store = await getPostgresEventStore({ pool: shared, schema: schema('share_e') });
    assert.equal(shared.options.connectionTimeoutMillis, DEFAULT_CONNECTION_WAIT_MS);
    await store.close();
  });
});
