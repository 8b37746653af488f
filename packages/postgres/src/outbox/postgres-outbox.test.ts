import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createConsumer, getInMemoryInbox, getInMemoryTransport, type Message, type Transport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, type PostgresOutbox, startPostgresOutboxRelay } from './postgres-outbox.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

let pool: pg.Pool;
const schemas: string[] = [];

before(async () => {
  if (skip) return;
  pool = new pg.Pool({ connectionString: postgresUrl, max: 8 });
});

after(async () => {
  if (skip) return;
  await pool.end();
  for (const schema of schemas) await dropSchema(schema);
});

async function setup(label: string): Promise<PostgresOutbox> {
  const schema = testSchema(label);
  schemas.push(schema);
  const outbox = await getPostgresOutbox({ pool, schema });
  await pool.query(`CREATE TABLE "${schema}".orders (id text PRIMARY KEY)`);
  return outbox;
}

/** The caller's own transaction: its rows and its messages. */
async function place(
  outbox: PostgresOutbox,
  id: string,
  fail = false,
  messages?: Parameters<PostgresOutbox['enqueue']>[2],
) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO "${outbox.schema}".orders (id) VALUES ($1)`, [id]);
    await outbox.enqueue(client, 'orders', messages ?? [{ type: 'OrderPlaced', data: { id }, key: id }]);
    if (fail) throw new Error('business rule failed');
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

async function collect(transport: Transport) {
  const received: Message[] = [];
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox: getInMemoryInbox(),
    pollMs: 10,
    handler: (message) => void received.push(message),
  });
  await consumer.start();
  return { received, consumer };
}

test("a rolled-back transaction's messages are never published; a committed one's are, with its rows", {
  skip,
}, async () => {
  const outbox = await setup('outbox_tx');
  const transport = getInMemoryTransport();
  const { received, consumer } = await collect(transport);
  const relay = await startPostgresOutboxRelay(outbox, transport, { pollMs: 10, leaseCheckMs: 50 });
  try {
    // An open transaction's rows stay invisible to the relay until it commits.
    const open = await pool.connect();
    await open.query('BEGIN');
    await open.query(`INSERT INTO "${outbox.schema}".orders (id) VALUES ('o-open')`);
    await outbox.enqueue(open, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-open' }, key: 'o-open' }]);

    await assert.rejects(place(outbox, 'o-rolled-back', true), /business rule failed/);
    await place(outbox, 'o-committed');
    await waitUntil(() => received.length === 1, 'the committed message');
    assert.deepEqual(received[0]?.data, { id: 'o-committed' });

    await open.query('COMMIT');
    open.release();
    await waitUntil(() => received.length === 2, 'the late commit');
    assert.deepEqual(
      received.map((m) => (m.data as { id: string }).id),
      ['o-committed', 'o-open'],
    );
    const { rows } = await pool.query(`SELECT id FROM "${outbox.schema}".orders ORDER BY id`);
    assert.deepEqual(
      rows.map((r) => r.id),
      ['o-committed', 'o-open'],
    );
    await waitUntil(async () => (await outbox.pending()) === 0, 'the outbox emptied');
  } finally {
    await relay.stop();
    await consumer.stop();
    await transport.close();
  }
});

test('two relays: one publishes at a time; the other takes over when the lease connection is killed', {
  skip,
}, async () => {
  const outbox = await setup('outbox_lease');
  const transport = getInMemoryTransport();
  const { received, consumer } = await collect(transport);
  const by: Record<string, number> = { a: 0, b: 0 };
  let inFlight = 0;
  let mostInFlight = 0;
  const counting = (name: string): Transport => ({
    capabilities: transport.capabilities,
    subscribe: transport.subscribe.bind(transport),
    declareSubscription: transport.declareSubscription.bind(transport),
    redeliver: transport.redeliver.bind(transport),
    close: async () => undefined,
    async publish(topic, messages, publishOptions) {
      by[name] = (by[name] ?? 0) + messages.length;
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        await transport.publish(topic, messages, publishOptions);
      } finally {
        inFlight--;
      }
    },
  });
  const tag = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const names = { a: `outbox-a-${tag}`, b: `outbox-b-${tag}` };
  const options = { pollMs: 10, leaseCheckMs: 50 };
  const a = await startPostgresOutboxRelay(outbox, counting('a'), { ...options, leaseApplicationName: names.a });
  const b = await startPostgresOutboxRelay(outbox, counting('b'), { ...options, leaseApplicationName: names.b });
  const relays = { a, b };
  try {
    await waitUntil(() => a.stats().lease === 'held' || b.stats().lease === 'held', 'a holder');
    const holder = a.stats().lease === 'held' ? 'a' : 'b';
    const other = holder === 'a' ? 'b' : 'a';
    for (let i = 0; i < 10; i++) await place(outbox, `first-${i}`);
    await waitUntil(() => received.length === 10, 'the first messages');
    assert.equal(by[holder], 10);
    assert.equal(by[other], 0);
    assert.equal(relays[other].stats().lease, 'standby');

    const killed = await pool.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [names[holder]],
    );
    assert.equal(killed.rowCount, 1);
    await waitUntil(() => relays[other].stats().lease === 'held', 'the take-over');
    for (let i = 0; i < 10; i++) await place(outbox, `second-${i}`);
    await waitUntil(() => received.length === 20, 'the second messages');
    assert.equal(by[other], 10);
    assert.equal(by[holder], 10);
    // The relay whose connection was killed stands by (it may not take the lease back while the other holds it).
    assert.equal(relays[holder].stats().lease, 'standby');
    assert.equal(mostInFlight, 1);
  } finally {
    await a.stop();
    await b.stop();
    await consumer.stop();
    await transport.close();
  }
});

test('a LISTEN connection that drops is told to onError once per drop; the relay polls meanwhile and listens again', {
  skip,
}, async () => {
  const outbox = await setup('outbox_listen');
  const transport = getInMemoryTransport();
  const { received, consumer } = await collect(transport);
  const name = `outbox-listen-${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const errors: unknown[] = [];
  const relay = await startPostgresOutboxRelay(outbox, transport, {
    pollMs: 10,
    leaseCheckMs: 50,
    leaseApplicationName: name,
    onError: (error) => errors.push(error),
  });
  const listening = async () =>
    Number(
      (
        await pool.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
          [`${name}-listen`],
        )
      ).rows[0]?.n,
    ) === 1;
  try {
    for (let drop = 1; drop <= 2; drop++) {
      await waitUntil(listening, `the relay listening (${drop})`);
      await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
        `${name}-listen`,
      ]);
      await waitUntil(() => errors.length === drop, `drop ${drop} told`);
      const told = errors[drop - 1] as Error & { code?: string };
      assert.equal(told.code, 'STORAGE');
      assert.match(
        told.message,
        /the outbox relay cannot LISTEN on .* it polls every 10 ms until the connection is back/,
      );
      await place(outbox, `after-drop-${drop}`);
      await waitUntil(() => received.length === drop, `the message after drop ${drop}`);
    }
    await waitUntil(listening, 'the relay listening again');
    assert.equal(errors.length, 2, 'each drop told once');
    assert.equal(relay.stats().failures, 0, 'no round failed');
  } finally {
    await relay.stop();
    await consumer.stop();
    await transport.close();
  }
});
