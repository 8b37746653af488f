import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { defineProjection, isProjectionFailedError, isValidationError } from '@factline/core';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore, type PostgresEventStore } from './postgres-event-store.ts';

const skip = await postgresUnavailable();

describe('PostgreSQL inline projections', { skip }, () => {
  const schema = testSchema('inline');
  let store: PostgresEventStore | undefined;
  after(async () => {
    await store?.close();
    await dropSchema(schema);
  });

  const totals = defineProjection<pg.PoolClient>({
    name: 'order_totals',
    handles: ['OrderPlaced'],
    init: async (tx) => {
      await tx.query(
        `CREATE TABLE IF NOT EXISTS "${schema}".order_totals (order_id text PRIMARY KEY, total numeric NOT NULL)`,
      );
    },
    handle: async (events, tx) => {
      for (const event of events) {
        const { orderId, total } = event.data as { orderId: string; total: number };
        if (total < 0) throw new Error(`negative total for ${orderId}`);
        await tx.query(`INSERT INTO "${schema}".order_totals (order_id, total) VALUES ($1, $2)`, [orderId, total]);
      }
    },
  });

  const rows = async () =>
    (
      await (store as PostgresEventStore).pool.query<{ order_id: string; total: string }>(
        `SELECT order_id, total FROM "${schema}".order_totals ORDER BY order_id`,
      )
    ).rows.map((r) => `${r.order_id}:${Number(r.total)}`);

  it('the read model is up to date when append resolves; a failing handler fails only its append', async () => {
    store = await getPostgresEventStore({ connectionString: postgresUrl, schema, inlineProjections: [totals] });
    await store.append('order-1', [{ type: 'OrderPlaced', data: { orderId: '1', total: 30 } }]);
    assert.deepEqual(await rows(), ['1:30']);

    const head = await store.headPosition();
    // Issued together, so they share a group-commit batch: the bad one fails alone.
    const settled = await Promise.allSettled(
      [10, -5, 20, 40].map((total, i) =>
        (store as PostgresEventStore).append(`order-b${i}`, [
          { type: 'OrderPlaced', data: { orderId: `b${i}`, total } },
          { type: 'Noted', data: {} },
        ]),
      ),
    );
    assert.deepEqual(
      settled.map((s) => s.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const failure = (settled[1] as PromiseRejectedResult).reason;
    assert.ok(isProjectionFailedError(failure), String(failure));
    assert.match(failure.message, /order_totals.*negative total for b1/);
    assert.ok(store.stats().largestBatch > 1, 'the appends should have shared a batch');
    assert.deepEqual(await rows(), ['1:30', 'b0:10', 'b2:20', 'b3:40']);
    assert.equal((await store.readStream('order-b1')).exists, false);
    const all: string[] = [];
    for await (const event of store.readAll({ after: head })) all.push(event.streamId);
    assert.deepEqual(all.sort(), ['order-b0', 'order-b0', 'order-b2', 'order-b2', 'order-b3', 'order-b3']);
  });

  it('a batch goes to each handler in one call, the events of all its appends in log order', async () => {
    const batchSchema = testSchema('inline_batch');
    const calls: string[][] = [];
    const seen = defineProjection<pg.PoolClient>({
      name: 'seen',
      handles: ['Seen'],
      handle: (events) => {
        calls.push(events.map((e) => `${e.streamId}@${e.position}`));
      },
    });
    const batching = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema: batchSchema,
      inlineProjections: [seen],
    });
    try {
      const count = 8;
      await Promise.all(
        Array.from({ length: count }, (_, i) => batching.append(`seen-${i}`, [{ type: 'Seen', data: { i } }])),
      );
      assert.ok(calls.length < count, `${calls.length} handler calls for ${count} appends`);
      const many = calls.find((call) => call.length > 1);
      assert.ok(many, 'one call carried the events of several appends');
      const positions = many.map((entry) => Number(entry.split('@')[1]));
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
      );
      assert.equal(calls.flat().length, count, 'each event handled once');
    } finally {
      await batching.close();
      await dropSchema(batchSchema);
    }
  });

  it('a handler that catches a failed statement and returns fails its append: nothing resolves unstored', async () => {
    // "Insert, and ignore the duplicate": in PostgreSQL the failed statement aborts the transaction, and its
    // COMMIT then rolls back, answering ROLLBACK rather than an error.
    const swallowSchema = testSchema('inlineswallow');
    const swallowing = defineProjection<pg.PoolClient>({
      name: 'first_seen',
      handles: ['Seen'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS "${swallowSchema}".first_seen (id text PRIMARY KEY)`);
      },
      handle: async (events, tx) => {
        for (const event of events) {
          try {
            await tx.query(`INSERT INTO "${swallowSchema}".first_seen (id) VALUES ($1)`, [
              (event.data as { id: string }).id,
            ]);
          } catch {
            // a duplicate: ignored (wrongly: the transaction is aborted now)
          }
        }
      },
    });
    const swallowStore = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema: swallowSchema,
      inlineProjections: [swallowing],
    });
    try {
      await swallowStore.append('s-0', [{ type: 'Seen', data: { id: 'same' } }]);
      // Appended together (one group commit), then append by append in savepoints: half repeat the id.
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          swallowStore.append(`s-${i + 1}`, [{ type: 'Seen', data: { id: i % 2 === 0 ? 'same' : `new-${i}` } }]),
        ),
      );
      const stored = new Map<string, number>();
      for await (const event of swallowStore.readAll()) stored.set(event.streamId, event.position);
      results.forEach((result, i) => {
        const streamId = `s-${i + 1}`;
        if (i % 2 === 0) {
          assert.equal(result.status, 'rejected', `${streamId} repeats the id: its handler's failure fails it`);
          const reason = (result as PromiseRejectedResult).reason;
          assert.ok(isProjectionFailedError(reason), `${streamId}: ${reason}`);
          assert.match(String(reason.message), /first_seen/);
          assert.match(String(reason.message), /caught the error and went on/);
          assert.equal(stored.has(streamId), false, `${streamId} is not stored`);
        } else {
          assert.equal(result.status, 'fulfilled', `${streamId}: ${(result as PromiseRejectedResult).reason}`);
          const { position } = (result as PromiseFulfilledResult<{ position: number }>).value;
          assert.equal(stored.get(streamId), position, `${streamId} resolved with the position it is stored at`);
        }
      });
      const seen = await swallowStore.pool.query<{ id: string }>(
        `SELECT id FROM "${swallowSchema}".first_seen ORDER BY id`,
      );
      assert.deepEqual(
        seen.rows.map((r) => r.id),
        ['new-1', 'new-3', 'new-5', 'new-7', 'same'],
      );
    } finally {
      await swallowStore.close();
      await dropSchema(swallowSchema);
    }
  });

  it('rejects a projection without handles', async () => {
    await assert.rejects(
      getPostgresEventStore({
        connectionString: postgresUrl,
        schema,
        inlineProjections: [{ name: 'x', handle: () => {} } as never],
      }),
      isValidationError,
    );
  });
});
