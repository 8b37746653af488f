import { after } from 'node:test';
import { testConsumerConformance, testTransportConformance } from '@factline/core/testing';
import type pg from 'pg';
import { type Cluster, privateCluster, restartCluster, stopCluster } from '../fixtures/private-cluster.ts';
import { getPostgresDeadLetterStore, getPostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport } from './postgres-transport.ts';

// The transport and consumer suites on a private server that their `restart`
// option restarts and their `outage` option stops and starts (the reconnect
// and outage cases run here, and are skipped with the reason on the shared
// server, which no test may stop).

const { cluster, skip, remove } = await privateCluster();
after(remove);
const url = () => (cluster as Cluster).url;
const restart = () => restartCluster(cluster as Cluster);
const outage = () => stopCluster(cluster as Cluster);
const schema = 'factline';

testTransportConformance({
  name: 'postgres (a private server, restarted by the restart cases)',
  skip,
  restart,
  outage,
  createTransport: () => getPostgresTransport({ connectionString: url(), schema, poolSize: 4 }),
});

testConsumerConformance<pg.PoolClient>({
  name: 'postgres (a private server, restarted by the restart cases)',
  transactional: true,
  skip,
  restart,
  outage,
  async createEnvironment() {
    const transport = await getPostgresTransport({ connectionString: url(), schema, poolSize: 8 });
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
      peerTransport: () => getPostgresTransport({ connectionString: url(), schema, poolSize: 4 }),
      close: () => transport.close(),
    };
  },
});
