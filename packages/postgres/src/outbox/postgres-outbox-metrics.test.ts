import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getInMemoryTransport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { withClockOff } from '../../../core/src/testing/fixtures/clock-off.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from './postgres-outbox.ts';

const unavailable = await postgresUnavailable();
const schema = testSchema('outbox_metrics');
let pool: pg.Pool;
let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
  if (!unavailable) pool = new pg.Pool({ connectionString: postgresUrl, max: 4 });
});
after(async () => {
  await sdk.shutdown();
  if (unavailable) return;
  await pool.end();
  await dropSchema(schema);
});

test('the relay reports the outbox backlog and the age of its oldest row, read from the table', {
  skip: unavailable,
}, async () => {
  const outbox = await getPostgresOutbox({ pool, schema });
  const transport = getInMemoryTransport();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await outbox.enqueue(client, 'payments', [
      { type: 'ChargeCard', data: {} },
      { type: 'ChargeCard', data: {} },
    ]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  // Enqueued 20 s ago, as far as the table says: the lag is known within the test's run time.
  await pool.query(`UPDATE "${schema}".outbox SET created_at = now() - interval '20 seconds'`);
  const began = Date.now();
  // No subscription to 'payments' yet: the relay holds its rows, they stay in the table.
  const relay = await startPostgresOutboxRelay(outbox, transport, { pollMs: 5, leaseCheckMs: 50, onError: () => {} });
  try {
    await waitUntil(() => relay.stats().held.includes('payments'), 'the rows held');
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 2 }]);
    const seconds = (await sdk.points('factline.relay.lag'))[0]?.value as number;
    assert.ok(seconds >= 19.5 && seconds < 20 + (Date.now() - began) / 1000 + 1, `about 20 s, got ${seconds}`);

    await transport.declareSubscription('payments', 'billing');
    await waitUntil(
      async () => relay.stats().published === 2 && (await outbox.pending()) === 0,
      'both published and removed',
    );
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 0 }]);
    assert.deepEqual(await sdk.points('factline.relay.lag'), [{ attributes: {}, value: 0 }]);
  } finally {
    await relay.stop();
    await transport.close();
  }
});

test('relays of one outbox table in a process, holding the lease or standing by, count its rows once', {
  skip: unavailable,
}, async () => {
  const outbox = await getPostgresOutbox({ pool, schema });
  // A second outbox object on the same pool and schema: the same table.
  const again = await getPostgresOutbox({ pool, schema });
  const transport = getInMemoryTransport();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await outbox.enqueue(client, 'payments', [
      { type: 'ChargeCard', data: {} },
      { type: 'ChargeCard', data: {} },
    ]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const options = { pollMs: 5, leaseCheckMs: 50, onError: () => {} };
  const relays = [
    await startPostgresOutboxRelay(outbox, transport, options),
    await startPostgresOutboxRelay(outbox, transport, options),
    await startPostgresOutboxRelay(again, transport, options),
  ];
  try {
    await Promise.all(relays.map((relay) => relay.ready()));
    // No subscription to 'payments': the holder holds its rows, they stay in the table.
    await waitUntil(() => relays.some((relay) => relay.stats().held.includes('payments')), 'the rows held');
    assert.deepEqual(relays.map((relay) => relay.stats().lease).sort(), ['held', 'standby', 'standby']);
    assert.deepEqual(await sdk.points('factline.outbox.backlog'), [{ attributes: {}, value: 2 }]);
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
    await transport.close();
    await pool.query(`DELETE FROM "${schema}".outbox`);
  }
});

test('the relay lag is the age the database gives its oldest row, whatever the clock of the process reading it', {
  skip: unavailable,
}, async () => {
  const outbox = await getPostgresOutbox({ pool, schema });
  const transport = getInMemoryTransport();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await outbox.enqueue(client, 'invoices', [{ type: 'SendInvoice', data: {} }]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  await pool.query(`UPDATE "${schema}".outbox SET created_at = now() - interval '20 seconds'`);
  const began = performance.now();
  try {
    for (const skewMs of [3_600_000, -3_600_000]) {
      // Started (its clock taken) in a process whose clock is an hour off the database's.
      const relay = await withClockOff(skewMs, () =>
        startPostgresOutboxRelay(outbox, transport, { pollMs: 5, leaseCheckMs: 50, onError: () => {} }),
      );
      try {
        await waitUntil(() => relay.stats().held.includes('invoices'), 'the row held');
        const seconds = (await sdk.points('factline.relay.lag'))[0]?.value as number;
        const bound = 20 + (performance.now() - began) / 1000 + 1;
        assert.ok(seconds >= 19.5 && seconds < bound, `a clock ${skewMs / 1000} s off: about 20 s, got ${seconds}`);
      } finally {
        await relay.stop();
      }
    }
  } finally {
    await transport.close();
    await pool.query(`DELETE FROM "${schema}".outbox`);
  }
});
