import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testConsumerConformance } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const schema = testSchema('consumer_conf');

const variants = [
  {
    shared: true,
    groupCommit: false,
    name: 'transport, inbox and dead letters on one pool (acks commit with the handler)',
  },
  { shared: true, groupCommit: true, name: 'the same with group commit' },
  { shared: false, groupCommit: false, name: 'inbox and dead letters on a pool of their own' },
];
for (const { shared, groupCommit, name } of variants) {
  testConsumerConformance<pg.PoolClient>({
    name: `postgres ${name}`,
    transactional: true,
    handlersTakeTurns: groupCommit,
    skip,
    async createEnvironment() {
      const transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 8 });
      const own = shared ? undefined : new pg.Pool({ connectionString: postgresUrl, max: 8 });
      const pool = own ?? transport.pool;
      await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".test_effects (
        seq bigserial PRIMARY KEY, consumer text NOT NULL, value text NOT NULL)`);
      return {
        transport,
        inbox: await getPostgresInbox({ pool, schema, groupCommit }),
        deadLetters: await getPostgresDeadLetterStore({ pool, schema }),
        async writeEffect(client, consumer, value) {
          await client.query(`INSERT INTO "${schema}".test_effects (consumer, value) VALUES ($1, $2)`, [
            consumer,
            value,
          ]);
        },
        effects: async (consumer) =>
          (
            await pool.query<{ value: string }>(
              `SELECT value FROM "${schema}".test_effects WHERE consumer = $1 ORDER BY seq`,
              [consumer],
            )
          ).rows.map((row) => row.value),
        close: async () => {
          await transport.close();
          await own?.end();
        },
      };
    },
    // The suites run one after the other; the last one drops the schema.
    teardown: () => (skip || shared ? undefined : dropSchema(schema)),
  });
}

test('group commit: runs arriving together share one transaction; a failing run rolls back alone', {
  skip,
}, async () => {
  const own = testSchema('consumer_group');
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 4 });
  try {
    const inbox = await getPostgresInbox({ pool, schema: own, groupCommit: true });
    await pool.query(`CREATE TABLE "${own}".effects (seq bigserial PRIMARY KEY, value text NOT NULL)`);
    const ran: string[] = [];
    const xids = new Set<string>();
    const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
    const run = (id: string, fail: boolean) =>
      applyOnce('group', id, new Date(), async (client) => {
        xids.add((await client.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0]?.x ?? '');
        await client.query(`INSERT INTO "${own}".effects (value) VALUES ($1)`, [id]);
        ran.push(id);
        if (fail) throw new TypeError(`${id} failed`);
      });
    // Queued before the first connection was even handed out: all four share one transaction.
    const results = await Promise.allSettled([run('a', false), run('b', false), run('c', true), run('d', false)]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
      [true, true, 'c failed', true],
    );
    assert.deepEqual(ran, ['a', 'b', 'c', 'd']);
    assert.equal(xids.size, 1, 'one transaction for four runs');
    const rows = await pool.query(`SELECT value FROM "${own}".effects ORDER BY seq`);
    assert.deepEqual(
      rows.rows.map((r) => r.value),
      ['a', 'b', 'd'],
      "c's write rolled back with its savepoint",
    );
    assert.equal(await inbox.has('group', 'c'), false, "c's mark rolled back too");
    assert.equal(await inbox.has('group', 'd'), true);
    assert.equal(await applyOnce('group', 'd', new Date(), () => assert.fail('a duplicate must not run')), false);
  } finally {
    await pool.end();
    await dropSchema(own);
  }
});
