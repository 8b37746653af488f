import { testConsumerConformance } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const schema = testSchema('consumer_conf');

testConsumerConformance<pg.PoolClient>({
  name: 'postgres transport, inbox and dead letters in one schema',
  transactional: true,
  skip,
  async createEnvironment() {
    const transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 8 });
    const pool = transport.pool;
    await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".test_effects (
      seq bigserial PRIMARY KEY, consumer text NOT NULL, value text NOT NULL)`);
    return {
      transport,
      inbox: await getPostgresInbox({ pool, schema }),
      deadLetters: await getPostgresDeadLetterStore({ pool, schema }),
      async writeEffect(client, consumer, value) {
        await client.query(`INSERT INTO "${schema}".test_effects (consumer, value) VALUES ($1, $2)`, [consumer, value]);
      },
      effects: async (consumer) =>
        (
          await pool.query<{ value: string }>(
            `SELECT value FROM "${schema}".test_effects WHERE consumer = $1 ORDER BY seq`,
            [consumer],
          )
        ).rows.map((row) => row.value),
      close: () => transport.close(),
    };
  },
  teardown: () => (skip ? undefined : dropSchema(schema)),
});
