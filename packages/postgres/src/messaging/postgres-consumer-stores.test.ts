import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testConsumerConformance, waitUntil } from '@factline/core/testing';
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
        // A pool of its own, as another process has.
        peerTransport: () => getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 4 }),
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

test('group commit: runs arriving together share one transaction; a failing run gets its error, the others apply once', {
  skip,
}, async () => {
  const own = testSchema('consumer_group');
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 4, application_name: own });
  try {
    const inbox = await getPostgresInbox({ pool, schema: own, groupCommit: true, maxGroups: 1 });
    await pool.query(`CREATE TABLE "${own}".effects (seq bigserial PRIMARY KEY, value text NOT NULL UNIQUE)`);
    const runs: { id: string; xid: string }[] = [];
    const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
    type Failure = 'none' | 'throw' | 'swallow';
    const run = (id: string, failure: Failure = 'none') =>
      applyOnce('group', id, new Date(), async (client) => {
        const xid = (await client.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0]?.x ?? '';
        runs.push({ id, xid });
        await client.query(`INSERT INTO "${own}".effects (value) VALUES ($1)`, [id]);
        if (failure === 'throw') throw new TypeError(`${id} failed`);
        if (failure === 'swallow') {
          // A handler that catches a failed statement and returns: the transaction is aborted.
          await client.query(`INSERT INTO "${own}".effects (value) VALUES ($1)`, [id]).catch(() => undefined);
        }
      });
    const outcomes = (results: PromiseSettledResult<boolean>[]) =>
      results.map((r) =>
        r.status === 'fulfilled' ? r.value : `${(r.reason as Error).name}: ${(r.reason as Error).message}`,
      );
    const effects = async () =>
      (await pool.query<{ value: string }>(`SELECT value FROM "${own}".effects ORDER BY value`)).rows.map(
        (r) => r.value,
      );
    const xidsOf = (ids: string[]) => new Set(runs.filter((r) => ids.includes(r.id)).map((r) => r.xid));

    // Queued in one turn of the event loop: one transaction for the four.
    assert.deepEqual(outcomes(await Promise.allSettled([run('a'), run('b'), run('c'), run('d')])), [
      true,
      true,
      true,
      true,
    ]);
    assert.equal(xidsOf(['a', 'b', 'c', 'd']).size, 1, 'one transaction for four runs');
    assert.deepEqual(await effects(), ['a', 'b', 'c', 'd']);
    assert.equal(await applyOnce('group', 'd', new Date(), () => assert.fail('a duplicate must not run')), false);

    // A run that throws: it gets its error, nothing of it stays, the others are applied once each.
    runs.length = 0;
    const failing = await Promise.allSettled([run('e'), run('f'), run('g', 'throw'), run('h')]);
    assert.deepEqual(outcomes(failing), [true, true, 'TypeError: g failed', true]);
    assert.deepEqual(await effects(), ['a', 'b', 'c', 'd', 'e', 'f', 'h']);
    assert.equal(await inbox.has('group', 'g'), false, "g's mark rolled back");
    assert.equal(await inbox.has('group', 'h'), true);
    // g's retries run alone, not in the group of the runs queued with them, until one succeeds.
    runs.length = 0;
    const again = await Promise.allSettled([run('g', 'throw'), run('i1'), run('i2')]);
    assert.deepEqual(outcomes(again), ['TypeError: g failed', true, true]);
    assert.equal(xidsOf(['i1', 'i2']).size, 1, 'i1 and i2 share a transaction');
    assert.ok(!xidsOf(['i1', 'i2']).has(runs.find((r) => r.id === 'g')?.xid ?? ''), 'g failed alone');
    runs.length = 0;
    assert.deepEqual(outcomes(await Promise.allSettled([run('g'), run('i'), run('j')])), [true, true, true]);
    const [gRun] = runs.filter((r) => r.id === 'g');
    assert.equal(xidsOf(['i', 'j']).size, 1, 'i and j share a transaction');
    assert.ok(gRun && !xidsOf(['i', 'j']).has(gRun.xid), 'g ran in a transaction of its own');

    // A run that swallows a failed statement: the group falls back, that run fails alone with a StorageError.
    runs.length = 0;
    const swallowing = await Promise.allSettled([run('k'), run('l', 'swallow'), run('m')]);
    assert.deepEqual(outcomes(swallowing).slice(0, 1), [true]);
    assert.match(String(outcomes(swallowing)[1]), /^StorageError: the handler caught a failed statement/);
    const swallowed = swallowing[1] as PromiseRejectedResult;
    assert.equal((swallowed.reason as { retryable?: boolean }).retryable, false, 'a handler bug: not retried');
    assert.equal(outcomes(swallowing)[2], true);
    assert.deepEqual(await effects(), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'i1', 'i2', 'j', 'k', 'm']);
    assert.equal(await inbox.has('group', 'l'), false);

    // The same as the group's last run: its COMMIT (sent with the next group's BEGIN) reports a
    // rollback; the group falls back the same way and the connection is left without a transaction.
    const last = await Promise.allSettled([run('n'), run('o', 'swallow')]);
    assert.equal(outcomes(last)[0], true);
    assert.match(String(outcomes(last)[1]), /^StorageError: the handler caught a failed statement/);
    assert.equal(await inbox.has('group', 'n'), true);
    assert.equal(await inbox.has('group', 'o'), false);
    assert.deepEqual(
      outcomes(await Promise.allSettled([run('p'), run('q')])),
      [true, true],
      'later groups still commit',
    );
    // The BEGIN sent with the last COMMIT is rolled back once no run comes to use it.
    const monitor = new pg.Client({ connectionString: postgresUrl });
    await monitor.connect();
    const openTransactions = async () =>
      (
        await monitor.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = $1 AND state = 'idle in transaction' AND query = 'COMMIT; BEGIN'`,
          [own],
        )
      ).rows[0]?.n;
    try {
      await waitUntil(async () => (await openTransactions()) === 0, 'no connection left in a transaction', 3000);
    } finally {
      await monitor.end();
    }
  } finally {
    await pool.end();
    await dropSchema(own);
  }
});

for (const groupCommit of [false, true]) {
  test(`${groupCommit ? 'group commit' : 'a transaction per message'}: the server killing the connection while a handler awaits something else fails that run (retryable), crashes nothing, and its retry applies it once`, {
    skip,
  }, async () => {
    const own = testSchema('consumer_killed');
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 4 });
    try {
      const inbox = await getPostgresInbox({ pool, schema: own, groupCommit });
      await pool.query(`CREATE TABLE "${own}".effects (value text NOT NULL)`);
      const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
      let killed = false;
      const run = (id: string) =>
        applyOnce('killed', id, new Date(), async (client) => {
          await client.query(`INSERT INTO "${own}".effects (value) VALUES ($1)`, [id]);
          if (killed) return;
          killed = true;
          let ended = false;
          client.once('end', () => {
            ended = true;
          });
          const pid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p;
          // From another connection, while this handler awaits something that is not the database.
          await pool.query('SELECT pg_terminate_backend($1)', [pid]);
          await waitUntil(() => ended, 'the killed connection to close');
        });
      const first = await run('m1').then(
        () => 'applied',
        (error: Error & { retryable?: boolean }) => `${error.name} retryable=${error.retryable}`,
      );
      assert.equal(first, 'StorageError retryable=true');
      assert.equal(await inbox.has('killed', 'm1'), false, 'nothing of the run committed');
      assert.equal(await run('m1'), true, 'the retry applies it');
      const effects = await pool.query<{ value: string }>(`SELECT value FROM "${own}".effects`);
      assert.deepEqual(
        effects.rows.map((r) => r.value),
        ['m1'],
      );
    } finally {
      await pool.end();
      await dropSchema(own);
    }
  });
}
