import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { defineProjection, type RecordedEvent, type ValidationError } from '@factline/core';
import { schemaStoreFixtures } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from './fixtures/server.ts';
import { getPostgresEventStore, getPostgresOutbox, startPostgresProjections } from './index.ts';

const { suiteSchemas } = schemaStoreFixtures;
const skip = await postgresUnavailable();
const v1 = { orderId: 'o-1', total: 30 };
const v3 = { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } };

describe('PostgreSQL paths with a schema registry', { skip }, () => {
  const schema = testSchema('schema_paths');
  const closing: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const part of closing.reverse()) await part.close();
    await dropSchema(schema);
  });
  const open = async (schemas = suiteSchemas(), extra = {}) => {
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema,
      poolSize: 3,
      schemas,
      ...extra,
    });
    closing.push(store);
    return store;
  };

  /** A projection keeping `[schemaVersion, data]` of each event in table `name`. */
  const seen = (name: string) =>
    defineProjection<pg.PoolClient>({
      name,
      handles: ['OrderPlaced'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS "${schema}".${name} (position bigint PRIMARY KEY, event json)`);
      },
      handle: async (events: readonly RecordedEvent[], tx) => {
        for (const e of events) {
          await tx.query(`INSERT INTO "${schema}".${name} VALUES ($1, $2)`, [
            e.position,
            JSON.stringify([e.schemaVersion, e.data]),
          ]);
        }
      },
    });
  const rows = async (pool: pg.Pool, table: string) =>
    (await pool.query(`SELECT event FROM "${schema}".${table} ORDER BY position`)).rows.map((r) => r.event);

  it('an inline projection sees the stamped events of a later append', async () => {
    const store = await open(suiteSchemas(), { inlineProjections: [seen('inline_seen')] });
    await store.append('order-1', [{ type: 'OrderPlaced', data: { ...v3, extra: true } }]);
    assert.deepEqual(await rows(store.pool, 'inline_seen'), [[3, v3]]);
  });

  it('async projections on the store read v1 events as v3', async () => {
    const raw = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
    closing.push(raw);
    const store = await open();
    const { position } = await raw.append('order-2', [{ type: 'OrderPlaced', data: v1 }]);
    const runner = await startPostgresProjections(store, [seen('async_seen')], { idleCheckMs: 5 });
    try {
      await runner.waitFor('async_seen', position);
      assert.deepEqual((await rows(store.pool, 'async_seen')).at(-1), [3, v3]);
    } finally {
      await runner.stop();
    }
  });

  it('the outbox validates (async validators awaited) and stamps messages; an invalid enqueue writes nothing', async () => {
    const outbox = await getPostgresOutbox({ connectionString: postgresUrl, schema, schemas: suiteSchemas() });
    closing.push(outbox as unknown as { close(): Promise<void> });
    const client = await outbox.pool.connect();
    try {
      const event = (type: string, data: unknown) => ({ type, data, headers: { 'factline-stream-id': 's-1' } });
      await client.query('BEGIN');
      await assert.rejects(
        outbox.enqueue(client, 'orders', [
          event('OrderPlaced', { orderId: 1 }),
          event('ItemReserved', { sku: 'nope' }),
        ]),
        (error: ValidationError) =>
          error.issues.map((i) => i.path).join() ===
          'messages[0].data.orderId,messages[0].data.amount,messages[1].data.sku',
      );
      const [message] = await outbox.enqueue(client, 'orders', [event('ItemReserved', { sku: 'SKU-1' })]);
      await client.query('COMMIT');
      assert.equal(message?.headers['factline-schema-version'], '1');
      const { rows: stored } = await client.query(`SELECT count(*)::int AS n FROM "${schema}".outbox`);
      assert.equal(stored[0].n, 1, 'only the valid enqueue was written');
    } finally {
      client.release();
    }
  });
});
