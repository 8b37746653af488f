import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { claim, claimStatement, type QueueQuery } from './postgres-claim.ts';
import { getPostgresTransport, type PostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();

describe('postgres claim', { skip }, () => {
  const schema = testSchema('claim');
  let transport: PostgresTransport;

  before(async () => {
    transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 2, listen: false });
  });

  after(async () => {
    await transport?.close();
    await dropSchema(schema);
  });

  it('a wider round that fails hands out the rows the earlier rounds took, instead of leaving them leased unseen', async () => {
    await transport.declareSubscription('orders', 'g');
    // c-1, then 64 rows of key a: the first window (64 rows) ends inside key a.
    await transport.publish('orders', [createMessage({ type: 'T', key: 'c', data: { n: 0 } })]);
    await transport.publish(
      'orders',
      Array.from({ length: 64 }, (_, n) => createMessage({ type: 'T', key: 'a', data: { n } })),
    );
    await transport.publish('orders', [createMessage({ type: 'T', key: 'b', data: { n: 0 } })]);
    const rows = await transport.pool.query<{ seq: string; key: string }>(
      `SELECT m.seq::text AS seq, m.key FROM "${schema}".transport_messages m WHERE m.topic = 'orders' ORDER BY m.seq`,
    );
    const seqOf = (key: string) => rows.rows.find((row) => row.key === key)?.seq;
    // Key a's first row in flight: the first window finds c-1 only, and its last row says it was full.
    await transport.pool.query(
      `UPDATE "${schema}".transport_messages SET visible_at = now() + interval '1 hour' WHERE seq = $1`,
      [seqOf('a')],
    );

    let rounds = 0;
    const failingWider: QueueQuery = async (_name, text, values) => {
      rounds += 1;
      if (rounds > 1) throw new Error('connection lost during the wider round');
      return (await transport.pool.query({ text, values })).rows;
    };
    const taken = await claim(failingWider, claimStatement(`"${schema}"`), 'orders', 'g', 2, 30_000);

    assert.equal(rounds, 2, 'the first window was full and short: a wider round was tried');
    assert.deepEqual(
      taken.map((row) => row.seq),
      [seqOf('c')],
      'the row the first round took is handed out',
    );
    // Nothing else was leased: b-1, which only the failed round could have reached, is still there to take.
    const leased = await transport.pool.query<{ seq: string }>(
      `SELECT m.seq::text AS seq FROM "${schema}".transport_messages m WHERE m.topic = 'orders' AND m.delivery_count > 0`,
    );
    assert.deepEqual(
      leased.rows.map((row) => row.seq),
      [seqOf('c')],
    );
  });

  it('a failing first round still rejects', async () => {
    const failing: QueueQuery = async () => {
      throw new Error('database unreachable');
    };
    await assert.rejects(claim(failing, claimStatement(`"${schema}"`), 'orders', 'g', 2, 30_000), /unreachable/);
  });
});
