import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isValidationError, type ValidationError } from '@factline/core';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, type PostgresOutbox } from './postgres-outbox.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;
const schema = testSchema('outbox_tx');
let pool: pg.Pool;
let outbox: PostgresOutbox;

const message = (id: string) => [{ type: 'OrderPlaced', data: { id }, key: id }];

async function refusal(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    assert.ok(isValidationError(error), `expected a ValidationError, got ${String(error)}`);
    const [issue] = (error as ValidationError).issues;
    assert.equal(issue?.path, 'client');
    return issue?.message ?? '';
  }
  assert.fail('expected a ValidationError, but the enqueue succeeded');
}

describe('PostgreSQL outbox: enqueue only inside the caller’s transaction', { skip }, () => {
  before(async () => {
    pool = new pg.Pool({ connectionString: postgresUrl, max: 3 });
    outbox = await getPostgresOutbox({ pool, schema });
  });
  after(async () => {
    await outbox?.close();
    await pool?.end();
    await dropSchema(schema);
  });

  it('refuses a pool (each of its queries runs in autocommit) and writes nothing', async () => {
    assert.match(await refusal(outbox.enqueue(pool, 'orders', message('o-pool'))), /pg Pool/);
    assert.equal(await outbox.pending(), 0);
  });

  it('refuses a client outside BEGIN, and one whose transaction has ended, and writes nothing', async () => {
    const client = await pool.connect();
    try {
      assert.match(await refusal(outbox.enqueue(client, 'orders', message('o-1'))), /not inside a transaction/);
      await client.query('BEGIN');
      await client.query('COMMIT');
      await refusal(outbox.enqueue(client, 'orders', message('o-2')));
      // A bare client that cannot report its status is checked by the server.
      const bare = { query: (config: pg.QueryConfig) => client.query(config) };
      await refusal(outbox.enqueue(bare, 'orders', message('o-3')));
    } finally {
      client.release();
    }
    assert.equal(await outbox.pending(), 0);
  });

  it('accepts a client in a transaction, even one whose BEGIN is queued and not yet answered; the rows follow it', async () => {
    const client = await pool.connect();
    try {
      const begin = client.query('BEGIN');
      await outbox.enqueue(client, 'orders', message('o-queued'));
      await begin;
      await client.query('ROLLBACK');
      assert.equal(await outbox.pending(), 0, 'a rolled-back enqueue left a row');
      await client.query('BEGIN');
      const bare = { query: (config: pg.QueryConfig) => client.query(config) };
      await outbox.enqueue(bare, 'orders', message('o-bare'));
      await outbox.enqueue(client, 'orders', message('o-status'));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    assert.equal(await outbox.pending(), 2);
  });
});
