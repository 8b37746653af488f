import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, defineProjection, isValidationError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from './fixtures/server.ts';
import { getPostgresInbox } from './messaging/postgres-consumer-stores.ts';
import { startPostgresProjections } from './projections/postgres-projections.ts';
import { getPostgresEventStore } from './store/postgres-event-store.ts';
import { openClientHandle } from './transaction-handle.ts';

const skip = await postgresUnavailable();

describe('PostgreSQL transaction handles', { skip }, () => {
  const schema = testSchema('handle');
  // One connection: whoever takes the pool's client next gets the very connection the handler had.
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 1, application_name: schema });
  after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const table = `"${schema}".effects`;
  const effects = async () =>
    (await pool.query<{ value: string }>(`SELECT value FROM ${table} ORDER BY value`)).rows.map((r) => r.value);

  it('a handle queries while live; once ended, query refuses in every form and release is refused', async () => {
    const client = await pool.connect();
    try {
      const handle = openClientHandle(client);
      assert.equal((await handle.client.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
      assert.throws(() => handle.client.release(), isValidationError);
      handle.end();
      await assert.rejects(handle.client.query('SELECT 1'), isValidationError);
      const viaCallback = await new Promise((resolve) => {
        handle.client.query('SELECT 1', (error: Error | undefined) => resolve(error));
      });
      assert.ok(isValidationError(viaCallback), String(viaCallback));
      assert.equal(handle.client.escapeLiteral("it's"), "'it''s'", 'other members work on the client');
    } finally {
      client.release();
    }
  });

  for (const groupCommit of [true, false]) {
    it(`inbox (${groupCommit ? 'group commit' : 'a transaction per message'}): a client kept past the handler is refused, and its query never runs in the next user's transaction`, async () => {
      const inbox = await getPostgresInbox({ pool, schema, groupCommit });
      await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (value text NOT NULL)`);
      await pool.query(`DELETE FROM ${table}`);
      let kept: pg.PoolClient | undefined;
      const message = createMessage({ type: 'OrderPlaced', data: {}, key: 'o-1' });
      const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
      assert.equal(
        await applyOnce('billing', message.id, new Date(), async (tx) => {
          kept = tx;
          await tx.query(`INSERT INTO ${table} (value) VALUES ('handler')`);
        }),
        true,
      );

      // The next user of the connection, inside its own transaction.
      const next = await pool.connect();
      let late: unknown;
      try {
        await next.query('BEGIN');
        late = await (kept as pg.PoolClient).query(`INSERT INTO ${table} (value) VALUES ('late')`).then(
          () => undefined,
          (error: unknown) => error,
        );
        await next.query(`INSERT INTO ${table} (value) VALUES ('next user')`);
        await next.query('COMMIT');
      } finally {
        next.release();
      }
      assert.ok(isValidationError(late), `the late query is refused, got ${String(late)}`);
      assert.deepEqual(
        await effects(),
        ['handler', 'next user'],
        "the late query did not run in the next user's transaction",
      );
    });
  }

  it('an async projection: a query from a continuation left running after the batch is refused; nothing of it lands', async () => {
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema: `${schema}_store`,
      poolSize: 2,
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let late: Promise<unknown> | undefined;
    const projection = defineProjection<pg.PoolClient>({
      name: 'late_rows',
      handles: ['Seen'],
      init: async (tx) => {
        await tx.query(`CREATE TABLE IF NOT EXISTS ${table}_p (value text NOT NULL)`);
      },
      handle: async (events, tx) => {
        await tx.query(`INSERT INTO ${table}_p (value) VALUES ($1)`, [`batch-${events.length}`]);
        // Left running: it queries once the batch's transaction committed.
        late = gate
          .then(() => tx.query(`INSERT INTO ${table}_p (value) VALUES ('late')`))
          .then(
            () => undefined,
            (error: unknown) => error,
          );
      },
    });
    const runner = await startPostgresProjections(store, [projection]);
    try {
      const { position } = await store.append('s-1', [{ type: 'Seen', data: {} }]);
      await runner.waitFor('late_rows', position, { timeoutMs: 10_000 });
      release();
      await waitUntil(() => late !== undefined, 'the handler ran');
      assert.ok(isValidationError(await late), 'refused');
      const { rows } = await store.pool.query<{ value: string }>(`SELECT value FROM ${table}_p`);
      assert.deepEqual(
        rows.map((r) => r.value),
        ['batch-1'],
      );
    } finally {
      await runner.stop();
      await store.close();
      await dropSchema(`${schema}_store`);
    }
  });

  it('an inline projection: a query after the append committed is refused; a failing handler leaves no row', async () => {
    let kept: pg.PoolClient | undefined;
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema: `${schema}_inline`,
      inlineProjections: [
        defineProjection<pg.PoolClient>({
          name: 'inline_rows',
          handles: ['Seen'],
          init: async (tx) => {
            await tx.query(`CREATE TABLE IF NOT EXISTS ${table}_i (value text NOT NULL)`);
          },
          handle: async (events, tx) => {
            kept = tx;
            await tx.query(`INSERT INTO ${table}_i (value) VALUES ($1)`, [events[0]?.streamId]);
            if (events[0]?.streamId === 'bad') throw new Error('refused by the projection');
          },
        }),
      ],
    });
    try {
      await store.append('good', [{ type: 'Seen', data: {} }]);
      await assert.rejects(store.append('bad', [{ type: 'Seen', data: {} }]));
      await assert.rejects(
        (kept as pg.PoolClient).query(`INSERT INTO ${table}_i (value) VALUES ('late')`),
        isValidationError,
      );
      const { rows } = await store.pool.query<{ value: string }>(`SELECT value FROM ${table}_i`);
      assert.deepEqual(
        rows.map((r) => r.value),
        ['good'],
      );
    } finally {
      await store.close();
      await dropSchema(`${schema}_inline`);
    }
  });
});
