import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { hasPrepared, prepareStatements, runPipeline } from './pipeline.ts';

const skip = await postgresUnavailable();
const schema = testSchema('pipeline');

describe('pipelined statements on a node-postgres client', { skip }, () => {
  let client: pg.Client;
  let observer: pg.Client;
  const statements = [
    { name: 'pipe-insert', text: `INSERT INTO "${schema}".t (k, v) VALUES ($1, $2) RETURNING k, v` },
    { name: 'pipe-count', text: `SELECT count(*)::int FROM "${schema}".t` },
  ];

  before(async () => {
    client = new pg.Client({ connectionString: postgresUrl });
    observer = new pg.Client({ connectionString: postgresUrl });
    await Promise.all([client.connect(), observer.connect()]);
    await observer.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (k text PRIMARY KEY, v int NOT NULL)`);
    await prepareStatements(client, statements);
  });

  after(async () => {
    await Promise.allSettled([client?.end(), observer?.end()]);
    await dropSchema(schema);
  });

  it('prepares once per connection, and answers each statement’s rows as text, in order', async () => {
    assert.equal(hasPrepared(client, statements), true);
    assert.equal(hasPrepared(observer, statements), false);
    await prepareStatements(client, statements); // nothing left to prepare: no error for a second PREPARE
    const rows = await runPipeline(client, [
      { name: 'pipe-insert', values: ['a', 1] },
      { name: 'pipe-insert', values: ['b', 2] },
      { name: 'pipe-count', values: [] },
    ]);
    assert.deepEqual(rows, [[['a', '1']], [['b', '2']], [['2']]]);
    // The client is usable as ever afterwards.
    assert.equal((await client.query('SELECT 41 + 1 AS n')).rows[0]?.n, 42);
  });

  it('is one transaction: a failing statement takes back the ones before it, and the error names it', async () => {
    await assert.rejects(
      runPipeline(client, [
        { name: 'pipe-insert', values: ['c', 3] },
        { name: 'pipe-insert', values: ['a', 9] }, // the primary key refuses it
        { name: 'pipe-insert', values: ['d', 4] },
      ]),
      (error: unknown) => (error as { code?: string }).code === '23505',
    );
    const { rows } = await observer.query<{ k: string }>(`SELECT k FROM "${schema}".t ORDER BY k`);
    assert.deepEqual(
      rows.map((r) => r.k),
      ['a', 'b'],
    );
    const after = await runPipeline(client, [{ name: 'pipe-insert', values: ['c', 3] }]);
    assert.deepEqual(after, [[['c', '3']]]);
  });

  it('a later statement sees what committed while an earlier one waited for a lock', async () => {
    const lock = { name: 'pipe-lock', text: 'SELECT pg_advisory_xact_lock(47114711)' };
    await prepareStatements(client, [lock]);
    const holder = new pg.Client({ connectionString: postgresUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(47114711)');
      await holder.query(`INSERT INTO "${schema}".t (k, v) VALUES ('held', 5)`);
      const pending = runPipeline(client, [
        { name: 'pipe-lock', values: [] },
        { name: 'pipe-count', values: [] },
      ]);
      // Once the pipeline waits for the lock, commit the holder's row.
      await waitUntil(async () => {
        const { rows } = await observer.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 47114711`,
        );
        return (rows[0]?.n ?? 0) > 0;
      }, 'the pipeline to wait for the lock');
      await holder.query('COMMIT');
      const rows = await pending;
      assert.deepEqual(rows[1], [['4']], 'the count must include the row committed while the lock was awaited');
    } finally {
      await holder.end();
    }
  });
});
