import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage, type Message, type ValidationError } from '@factline/core';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from './fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './messaging/postgres-consumer-stores.ts';
import { getPostgresOutbox } from './outbox/postgres-outbox.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;

let pool: pg.Pool;
const schemas: string[] = [];
const schema = (label: string) => {
  const name = testSchema(label);
  schemas.push(name);
  return name;
};

/** Runs `work` between BEGIN and ROLLBACK on a client of the pool. */
async function inTransaction(work: (client: pg.PoolClient) => Promise<unknown>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await work(client);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

describe('postgres: errors say what happened', { skip }, () => {
  before(() => {
    pool = new pg.Pool({ connectionString: postgresUrl, max: 4 });
  });
  after(async () => {
    await pool.end();
    for (const name of schemas) await dropSchema(name);
  });

  it('enqueue where the outbox table is missing says so and how to create it', async () => {
    const outbox = await getPostgresOutbox({ pool, schema: schema('nooutbox') });
    await pool.query(`DROP TABLE "${outbox.schema}".outbox`);
    await inTransaction(async (client) => {
      await assert.rejects(outbox.enqueue(client, 'orders', [{ type: 'OrderPlaced', data: {} }]), (error: Error) => {
        assert.equal((error as { code?: string }).code, 'STORAGE');
        assert.match(error.message, /The outbox's tables are missing/);
        assert.match(error.message, /getPostgresOutbox\(\{ schema: 't_nooutbox_/);
        return true;
      });
    });
  });

  it('enqueue refuses messages JSON cannot carry faithfully with one ValidationError, and writes nothing', async () => {
    const outbox = await getPostgresOutbox({ pool, schema: schema('badmsg') });
    const built: Message = { ...createMessage({ type: 'Built', data: {} }), key: 'acct-\uD800' };
    const bad = [
      { type: 'A', data: { ratio: Number.NaN } },
      { type: 'B', data: { byId: new Map() } },
      { type: 'C', data: () => 1 },
      { type: 'D', data: { amount: 1n } },
      { type: 'E\u0000', data: {} },
      { type: 'F', data: { name: 'a\uDC00' } },
      built,
    ];
    await inTransaction(async (client) => {
      await assert.rejects(outbox.enqueue(client, 'orders', bad), (error: ValidationError) => {
        assert.equal(error.code, 'VALIDATION');
        assert.deepEqual(
          error.issues.map((issue) => issue.path),
          [
            'messages[0].data.ratio',
            'messages[1].data.byId',
            'messages[2].data',
            'messages[3].data.amount',
            'messages[4].type',
            'messages[5].data.name',
            'messages[6].key',
          ],
        );
        return true;
      });
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM "${outbox.schema}".outbox`);
      assert.equal(rows[0]?.n, 0);
    });
    await outbox.close();
  });

  it('a closed inbox or dead-letter store names which is closed', async () => {
    const name = schema('closed');
    const inbox = await getPostgresInbox({ pool, schema: name });
    const deadLetters = await getPostgresDeadLetterStore({ pool, schema: name });
    await inbox.close();
    await deadLetters.close();
    await assert.rejects(inbox.has('billing', 'm-1'), { code: 'STORE_CLOSED', message: 'The inbox is closed' });
    await assert.rejects(deadLetters.list(), { code: 'STORE_CLOSED', message: 'The dead-letter store is closed' });
  });
});
