import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isNoSubscriptionError, type Message, type Subscription } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresTransport } from '../messaging/postgres-transport.ts';
import { getPostgresOutbox, type PostgresOutbox, startPostgresOutboxRelay } from './postgres-outbox.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

let pool: pg.Pool;
const schemas: string[] = [];
before(() => {
  if (!skip) pool = new pg.Pool({ connectionString: postgresUrl, max: 6 });
});
after(async () => {
  if (skip) return;
  await pool.end();
  for (const schema of schemas) await dropSchema(schema);
});

async function setup(label: string) {
  const schema = testSchema(label);
  schemas.push(schema);
  const outbox = await getPostgresOutbox({ pool, schema });
  const transport = await getPostgresTransport({ pool, schema, listen: false, pollIntervalMs: 20 });
  return { outbox, transport };
}

async function enqueue(outbox: PostgresOutbox, topic: string, type: string): Promise<Message> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const [message] = await outbox.enqueue(client, topic, [{ type, data: {}, key: 'k' }]);
    await client.query('COMMIT');
    return message as Message;
  } finally {
    client.release();
  }
}

/** Fails if `promise` has not settled within `ms`: a stop that hangs fails the test instead of the run. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function receiveAll(sub: Subscription, count: number): Promise<Message[]> {
  const out: Message[] = [];
  await waitUntil(async () => {
    for (const delivery of await sub.receive(10, 50, new AbortController().signal)) {
      out.push(delivery.message);
      await delivery.ack();
    }
    return out.length >= count;
  }, `${count} messages`);
  return out;
}

test('the postgres outbox relay holds a topic with no subscription, reports it, publishes other topics, then the held rows in order', {
  skip,
}, async () => {
  const { outbox, transport } = await setup('outbox_hold');
  await transport.declareSubscription('payments', 'ledger');
  const held = [await enqueue(outbox, 'orders', 'A1'), await enqueue(outbox, 'orders', 'A2')];
  const payment = await enqueue(outbox, 'payments', 'P1');
  held.push(await enqueue(outbox, 'orders', 'A3'));
  const errors: unknown[] = [];
  const relay = await startPostgresOutboxRelay(outbox, transport, {
    pollMs: 10,
    leaseCheckMs: 50,
    holdBackoffMaxMs: 40,
    onError: (error) => errors.push(error),
  });
  try {
    const payments = await receiveAll(transport.subscribe('payments', 'ledger'), 1);
    assert.deepEqual(
      payments.map((m) => m.id),
      [payment.id],
      'a held topic holds back no other topic',
    );
    await waitUntil(() => errors.length >= 3, 'three tries of the held topic, each reported');
    assert.ok(errors.every((e) => isNoSubscriptionError(e)));
    const stats = relay.stats();
    assert.deepEqual(stats.held, ['orders']);
    assert.equal(stats.failures, 0, 'holding is not failing');
    assert.equal(await outbox.pending(), 3, 'the held rows stay in the outbox');
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${outbox.schema}".transport_messages`);
    assert.equal(rows[0]?.n, 0, 'a refused publish wrote nothing');

    await transport.declareSubscription('orders', 'billing');
    const orders = await receiveAll(transport.subscribe('orders', 'billing'), 3);
    assert.deepEqual(
      orders.map((m) => m.id),
      held.map((m) => m.id),
      'published in outbox order',
    );
    await waitUntil(async () => relay.stats().held.length === 0 && (await outbox.pending()) === 0, 'the hold lifted');
  } finally {
    await within(relay.stop(), 5000, 'stop');
    await transport.close();
  }
});

test('stop() resolves while the postgres outbox relay holds', { skip }, async () => {
  const { outbox, transport } = await setup('outbox_hold_stop');
  await enqueue(outbox, 'orders', 'A');
  const relay = await startPostgresOutboxRelay(outbox, transport, { pollMs: 10_000, leaseCheckMs: 50 });
  try {
    await waitUntil(() => relay.stats().held.length === 1, 'holding');
  } finally {
    await within(relay.stop(), 5000, 'stop');
    await transport.close();
  }
  assert.equal(relay.stats().running, false);
  assert.equal(await outbox.pending(), 1, 'the row stays for the next relay');
});
