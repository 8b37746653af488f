import { testConsumerConformance } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const schema = testSchema('consumer_conf');

for (const shared of [true, false]) {
  testConsumerConformance<pg.PoolClient>({
    name: shared
      ? 'postgres transport, inbox and dead letters on one pool (acks commit with the handler)'
      : 'postgres inbox and dead letters on a pool of their own',
    transactional: true,
    skip,
    async createEnvironment() {
      const transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 8 });
      const own = shared ? undefined : new pg.Pool({ connectionString: postgresUrl, max: 8 });
      const pool = own ?? transport.pool;
      await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".test_effects (
        seq bigserial PRIMARY KEY, consumer text NOT NULL, value text NOT NULL)`);
      return {
        transport,
        inbox: await getPostgresInbox({ pool, schema }),
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
