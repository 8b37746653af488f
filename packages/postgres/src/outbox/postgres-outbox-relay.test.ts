import { after, before } from 'node:test';
import type { Message } from '@factline/core';
import { testOutboxRelayConformance } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresTransport } from '../messaging/postgres-transport.ts';
import { getPostgresOutbox, startPostgresOutboxRelay } from './postgres-outbox.ts';

const unavailable = await postgresUnavailable();
let pool: pg.Pool;
const schemas: string[] = [];
before(() => {
  if (!unavailable) pool = new pg.Pool({ connectionString: postgresUrl, max: 6 });
});
after(async () => {
  if (unavailable) return;
  await pool.end();
  for (const schema of schemas) await dropSchema(schema);
});

testOutboxRelayConformance({
  name: 'postgres',
  skip: unavailable,
  async createEnvironment() {
    const schema = testSchema('outbox_relay');
    schemas.push(schema);
    const outbox = await getPostgresOutbox({ pool, schema });
    const transport = await getPostgresTransport({ pool, schema, listen: false, pollIntervalMs: 20 });
    return {
      transport,
      async enqueue(topic, type, key = 'k') {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const [message] = await outbox.enqueue(client, topic, [{ type, data: {}, key }]);
          await client.query('COMMIT');
          return message as Message;
        } finally {
          client.release();
        }
      },
      pending: () => outbox.pending(),
      startRelay: (options, publishTo = transport) =>
        startPostgresOutboxRelay(outbox, publishTo, { ...options, leaseCheckMs: 50 }),
      close: () => transport.close(),
    };
  },
});
