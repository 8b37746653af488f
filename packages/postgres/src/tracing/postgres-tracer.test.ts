import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isValidationError, type Projection } from '@factline/core';
import { testTraceOperation } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from '../messaging/postgres-consumer-stores.ts';
import { getPostgresTransport } from '../messaging/postgres-transport.ts';
import { getPostgresOutbox } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { traceStatements } from './postgres-trace-reader.ts';
import { getPostgresTracer } from './postgres-tracer.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;
const schemas: string[] = [];
after(async () => {
  if (skip) return;
  for (const schema of schemas) await dropSchema(schema);
});

/** Every part a trace reads, on one pool, in a fresh schema. */
async function openSchema(label: string) {
  const schema = testSchema(label);
  schemas.push(schema);
  const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
  const pool = store.pool;
  const transport = await getPostgresTransport({ pool, schema, listen: false, pollIntervalMs: 10 });
  const outbox = await getPostgresOutbox({ pool, schema });
  const inbox = await getPostgresInbox({ pool, schema });
  const deadLetters = await getPostgresDeadLetterStore({ pool, schema });
  const tracer = await getPostgresTracer({ pool, schema });
  const close = async () => {
    await tracer.close();
    await inbox.close();
    await deadLetters.close();
    await transport.close();
    await store.close();
  };
  return { schema, store, pool, transport, outbox, inbox, deadLetters, tracer, close };
}

testTraceOperation<pg.PoolClient>({
  name: 'postgres (one schema)',
  skip,
  async open() {
    const env = await openSchema('trace');
    return {
      ...env,
      startRelay: (relay) => startPostgresProjections(env.store, [relay as Projection<pg.PoolClient>]),
      enqueue: (tx, topic, messages) => env.outbox.enqueue(tx, topic, messages),
    };
  },
});

describe('postgres: traceOperation reads through indexes', { skip }, () => {
  it('every statement of the trace uses its index, with sequential scans off the table', async () => {
    const env = await openSchema('trace_plan');
    const client = await env.pool.connect();
    try {
      // An empty table is cheapest to scan; with scans priced out, only a usable index avoids one.
      await client.query('SET enable_seqscan = off');
      const quoted = `"${env.schema}"`;
      for (const [source, sql] of Object.entries(traceStatements(quoted))) {
        const values: unknown[] = source === 'handled' ? [['a', 'b'], 10] : ['x', 10];
        const { rows } = await client.query<{ 'QUERY PLAN': string }>({ text: `EXPLAIN ${sql}`, values });
        const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        assert.match(plan, /Index Scan|Bitmap Index Scan|Index Only Scan/, `${source}:\n${plan}`);
        assert.doesNotMatch(plan, /Seq Scan/, `${source}:\n${plan}`);
      }
    } finally {
      client.release();
      await env.close();
    }
  });

  it('a schema made before the trace existed gets its indexes when a tracer opens it', async () => {
    const env = await openSchema('trace_old');
    const quoted = `"${env.schema}"`;
    const exists = async () =>
      (await env.pool.query('SELECT to_regclass($1) IS NOT NULL AS present', [`${quoted}.events_correlation`])).rows[0]
        ?.present as boolean;
    await env.pool.query(
      `DROP INDEX ${quoted}.events_correlation; DELETE FROM ${quoted}.migrations WHERE component = 'event-store' AND version = 3`,
    );
    assert.equal(await exists(), false);
    const tracer = await getPostgresTracer({ pool: env.pool, schema: env.schema });
    assert.equal(await exists(), true);
    await tracer.close();
    await env.close();
  });

  it('bad options are refused; a schema without Factline tables traces to an empty tree', async () => {
    await assert.rejects(getPostgresTracer({ pool: {} as pg.Pool }), (e: unknown) => isValidationError(e));
    await assert.rejects(getPostgresTracer({ connectionString: postgresUrl, limit: 5 } as never), (e: unknown) =>
      /getPostgresTracer\.limit: is not an option/.test((e as Error).message),
    );
    await assert.rejects(getPostgresTracer({}), isValidationError);
    const schema = testSchema('trace_empty');
    schemas.push(schema);
    const tracer = await getPostgresTracer({ connectionString: postgresUrl, schema });
    try {
      const tree = await tracer.traceOperation('op');
      assert.equal(tree.found, false);
    } finally {
      await tracer.close();
    }
  });
});
