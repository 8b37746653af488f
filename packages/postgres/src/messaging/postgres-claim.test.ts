import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { claim, claimStatement, type QueueQuery } from './postgres-claim.ts';
import { messageColumns, queueStatements } from './postgres-queue-statements.ts';
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

  it('a key whose earlier row commits after a later one was handed out is held by nobody else until that one settles', async () => {
    await transport.declareSubscription('late', 'g');
    const statements = queueStatements(`"${schema}"`);
    const first = createMessage({ type: 'T', key: 'k', data: { n: 1 } });
    const second = createMessage({ type: 'T', key: 'k', data: { n: 2 } });
    // A publish statement that took its seq, then was slow to commit (a large batch, a busy server).
    const slow = await transport.pool.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(statements.PUBLISH, ['late', ...messageColumns([first]), 'unused', 'late']);
      // A later publish of the same key commits first: its row is the key's only visible one.
      await transport.publish('late', [second]);
      const one = transport.subscribe('late', 'g');
      const other = transport.subscribe('late', 'g');
      const signal = new AbortController().signal;
      const [held] = await one.receive(10, 1000, signal);
      assert.equal(held?.message.id, second.id);
      await slow.query('COMMIT');
      // The earlier row is now the key's first, but the key is in flight with the other subscriber.
      assert.deepEqual(await other.receive(10, 100, signal), [], 'nobody else takes the key while its row is held');
      await held?.ack();
      const [next] = await other.receive(10, 1000, signal);
      assert.equal(next?.message.id, first.id, 'the key goes on once the held row settled');
      await next?.ack();
      await one.close();
      await other.close();
    } finally {
      slow.release();
    }
  });

  it('a failing first round still rejects', async () => {
    const failing: QueueQuery = async () => {
      throw new Error('database unreachable');
    };
    await assert.rejects(claim(failing, claimStatement(`"${schema}"`), 'orders', 'g', 2, 30_000), /unreachable/);
  });
});
