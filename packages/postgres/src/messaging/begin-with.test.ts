import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { beginWith } from './begin-with.ts';

const skip = await postgresUnavailable();
const schema = testSchema('begin_with');

describe('beginWith: BEGIN and a statement in one round trip', { skip }, () => {
  let client: pg.Client;
  let observer: pg.Client;
  const insert = (k: string, at: Date | null): pg.QueryConfig => ({
    name: `begin-with-${schema}`,
    text: `INSERT INTO "${schema}".t (k, at) VALUES ($1, $2) RETURNING k, at IS NULL AS no_time`,
    values: [k, at],
  });
  const notBroken = () => assert.fail('the connection was reported broken');

  before(async () => {
    client = new pg.Client({ connectionString: postgresUrl });
    observer = new pg.Client({ connectionString: postgresUrl });
    await Promise.all([client.connect(), observer.connect()]);
    await observer.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (k text PRIMARY KEY, at timestamptz)`);
  });

  after(async () => {
    await Promise.allSettled([client?.end(), observer?.end()]);
    await dropSchema(schema);
  });

  const count = async () => (await observer.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n;

  it('leaves the transaction open: its write commits with COMMIT and goes with ROLLBACK', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    let queries = 0;
    const query = client.query.bind(client);
    client.query = ((...args: Parameters<typeof query>) => {
      queries++;
      return query(...args);
    }) as typeof client.query;
    const rows = await beginWith(client, insert('a', at), notBroken);
    client.query = query;
    assert.deepEqual(rows, [['a', 'f']]);
    assert.equal(queries, 2, 'the preparation, then one pipeline');
    assert.equal(await count(), 0, 'not committed yet');
    await client.query('ROLLBACK');
    assert.equal(await count(), 0);

    await beginWith(client, insert('b', at), notBroken);
    await client.query('COMMIT');
    const stored = await observer.query(`SELECT k, at FROM "${schema}".t`);
    assert.deepEqual(stored.rows, [{ k: 'b', at }]);
  });

  it('a failing statement rejects and leaves an aborted transaction that ROLLBACK ends', async () => {
    await assert.rejects(beginWith(client, insert('b', null), notBroken), { code: '23505' });
    const rollback = await client.query('ROLLBACK');
    assert.equal(rollback.command, 'ROLLBACK');
    const rows = await beginWith(client, insert('c', null), notBroken);
    assert.deepEqual(rows, [['c', 't']]);
    await client.query('COMMIT');
    assert.equal(await count(), 2);
  });

  it('reports the connection broken when the preparation fails', async () => {
    let broken: unknown;
    const bad = { name: `begin-with-bad-${schema}`, text: 'SELECT * FROM no_such_table_here', values: [] };
    await assert.rejects(
      beginWith(client, bad, (error) => (broken = error)),
      { code: '42P01' },
    );
    assert.equal((broken as { code?: string } | undefined)?.code, '42P01');
    await client.query('ROLLBACK');
  });
});
