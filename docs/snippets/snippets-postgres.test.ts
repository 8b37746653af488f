import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConsumer, type Message } from '@factline/core';
import { getPostgresTransport } from '@factline/postgres';
import pg from 'pg';
import {
  dropSchema,
  postgresUnavailable,
  postgresUrl,
  testSchema,
} from '../../packages/postgres/src/fixtures/server.ts';
import { postgresOutbox } from './outbox-postgres.ts';
import { postgresStore } from './postgres-store.ts';
import { inlinePostgres, runPostgresProjections } from './projections-postgres.ts';
import { billing } from './sql-inbox.ts';
import { postgresWithOptions } from './store-options.ts';
import { until } from './until.ts';

/** The test server's URL with `schema` first on the search path, so unqualified read-model tables land in it. */
const inSchema = (schema: string) =>
  `${postgresUrl}${postgresUrl.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`;

async function withSchema(t: { skip(reason: string): void }, label: string, body: (schema: string) => Promise<void>) {
  const skip = await postgresUnavailable();
  if (skip) return t.skip(skip);
  const schema = testSchema(label);
  try {
    await body(schema);
  } finally {
    await dropSchema(schema);
  }
}

test('the PostgreSQL snippet runs: append, then resume readAll from a checkpoint', (t) =>
  withSchema(t, 'snippet_store', async (schema) => {
    assert.equal(await postgresStore(postgresUrl, schema), 1);
  }));

test('the PostgreSQL options snippet opens a store that appends and reads', (t) =>
  withSchema(t, 'snippet_options', async (schema) => {
    const store = await postgresWithOptions(postgresUrl, schema);
    try {
      await store.append('s-1', [{ type: 'Opened', data: {} }]);
      assert.equal((await store.readStream('s-1')).version, 1);
    } finally {
      await store.close();
    }
  }));

test('the PostgreSQL projection snippets: async runner and inline projection write their rows', (t) =>
  withSchema(t, 'snippet_proj', async (schema) => {
    assert.deepEqual(await runPostgresProjections(inSchema(schema), schema), [{ order_id: '1', total: 30 }]);
    await dropSchema(schema);
    assert.deepEqual(await inlinePostgres(inSchema(schema), schema), [{ order_id: '2', total: 12 }]);
  }));

test('the PostgreSQL outbox snippet: the committed row and message, then the relay publishes it', (t) =>
  withSchema(t, 'snippet_outbox', async (schema) => {
    const client = new pg.Client({ connectionString: inSchema(schema) });
    await client.connect();
    const transport = await getPostgresTransport({ connectionString: postgresUrl, schema });
    const received: Message[] = [];
    const audit = createConsumer({ name: 'audit', topic: 'orders', transport, handler: (m) => void received.push(m) });
    await audit.start();
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    const { relay } = await postgresOutbox(postgresUrl, schema, client, transport);
    try {
      await until(() => received.length === 1);
      assert.deepEqual([received[0]?.type, received[0]?.key], ['OrderPlaced', 'o-1']);
      const { rows } = await client.query('SELECT id, total::float8 AS total FROM orders');
      assert.deepEqual(rows, [{ id: 'o-1', total: 30 }]);
    } finally {
      await relay.stop();
      await audit.stop();
      await transport.close();
      await client.end();
    }
  }));

test('the SQL inbox snippet runs: a message delivered twice is invoiced once', (t) =>
  withSchema(t, 'snippet_inbox', async (schema) => {
    assert.deepEqual(await billing(postgresUrl, schema), [{ order_id: 'order-7', total: 30 }]);
  }));
