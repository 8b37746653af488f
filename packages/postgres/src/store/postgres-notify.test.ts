import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import {
  getPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from './postgres-event-store.ts';
import { appendChannel } from './schema.ts';

const skip = await postgresUnavailable();

describe('PostgreSQL store: announcing appends with NOTIFY', { skip }, () => {
  const schemas: string[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  const open = async (label: string, options: Partial<PostgresEventStoreOptions> = {}) => {
    const schema = testSchema(label);
    schemas.push(schema);
    // A store on a pool of the test's own takes no connection string (it would be ignored: refused).
    const where = options.pool ? {} : { connectionString: postgresUrl };
    const store = await getPostgresEventStore({ ...where, schema, ...options });
    cleanups.push(() => store.close());
    return store;
  };

  /**
   * Listens on the store's channel. Each notification's payload is checked when
   * it arrives: it must be the position of an event another session can already
   * read (a notification is never sent before the append it announces commits).
   */
  const listen = async (store: PostgresEventStore) => {
    const listener = new pg.Client({ connectionString: postgresUrl });
    const checker = new pg.Client({ connectionString: postgresUrl });
    await Promise.all([listener.connect(), checker.connect()]);
    cleanups.push(
      () => listener.end(),
      () => checker.end(),
    );
    const heard: number[] = [];
    const checks: Promise<void>[] = [];
    listener.on('notification', (message) => {
      const head = Number(message.payload);
      heard.push(head);
      checks.push(
        checker
          .query<{ n: number }>(`SELECT count(*)::int AS n FROM "${store.schema}".events WHERE position = $1`, [head])
          .then(({ rows }) => assert.equal(rows[0]?.n, 1, `notified head ${head} is a committed event`)),
      );
    });
    await listener.query(`LISTEN "${appendChannel(store.schema)}"`);
    return { heard, checked: () => Promise.all(checks) };
  };

  after(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    for (const schema of schemas) await dropSchema(schema);
  });

  it('sequential appends carry the notification in their own transaction, at most one per interval; the last appends are announced when appends stop', async () => {
    const intervalMs = 20;
    const store = await open('notify_seq', { notifyIntervalMs: intervalMs });
    const { heard, checked } = await listen(store);
    const startedAt = Date.now();
    let last = 0;
    // Bounded: stops after four carried notifications, or at 5,000 appends.
    for (let i = 0; i < 5_000 && store.stats().carriedNotifications < 4; i++) {
      last = (await store.append(`seq-${i}`, [{ type: 'Added', data: { i } }], { expectedVersion: 'no-stream' }))
        .position;
    }
    last = (await store.append('seq-last', [{ type: 'Added', data: {} }])).position;
    // Every notification sent arrives, the last append's head among them. (A separate
    // notification slowed down past the interval may arrive after a later carried one:
    // runners wake on any head past their position, so the order does not matter.)
    await waitUntil(() => {
      const stats = store.stats();
      return heard.includes(last) && heard.length === stats.carriedNotifications + stats.separateNotifications;
    }, 'a notification of the last append, and every notification sent');
    const elapsedMs = Date.now() - startedAt;
    await checked();

    const stats = store.stats();
    assert.ok(stats.carriedNotifications >= 4, `carried ${stats.carriedNotifications}`);
    assert.equal(Math.max(...heard), last);
    // Without the interval there would be one notification per append (hundreds here).
    assert.ok(
      heard.length <= Math.ceil(elapsedMs / intervalMs) + 2,
      `${heard.length} notifications in ${elapsedMs} ms`,
    );
  });

  it('one-event batches carry it too; appends that cannot carry one (several events) are announced separately', async () => {
    const store = await open('notify_batch', { notifyIntervalMs: 0 });
    const { heard, checked } = await listen(store);
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        store.append(`batch-${i}`, [{ type: 'Added', data: { i } }], { expectedVersion: 'no-stream' }),
      ),
    );
    const head = Math.max(...results.map((r) => r.position));
    await waitUntil(() => heard.includes(head), 'a notification of the batch head');
    const batched = store.stats();
    assert.ok(batched.commits < batched.jobs, 'the appends shared batches');
    assert.ok(batched.carriedNotifications >= 1);
    // Every pipeline carried one (interval 0), and each covered its whole batch: nothing left to send separately.
    assert.equal(batched.separateNotifications, 0);

    const several = await store.append('several', [
      { type: 'Added', data: { n: 1 } },
      { type: 'Added', data: { n: 2 } },
    ]);
    await waitUntil(() => heard.includes(several.position), 'a notification of the two-event append');
    assert.equal(store.stats().separateNotifications, 1);
    await checked();
  });

  it('another refusal of the same code (54000: an index row too big) fails that append only: appends keep carrying the notification', async () => {
    const store = await open('notify_54000', { notifyIntervalMs: 0 });
    // The error PostgreSQL gives for an index row over its limit, raised for one stream by a trigger.
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE FUNCTION "${store.schema}".refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'index row requires 8720 bytes, maximum size is 8191' USING ERRCODE = '54000'; END $$`);
      await admin.query(`CREATE TRIGGER refuse_row BEFORE INSERT ON "${store.schema}".events FOR EACH ROW
        WHEN (NEW.stream_id = 'refused-1') EXECUTE FUNCTION "${store.schema}".refuse_row()`);
    } finally {
      await admin.end();
    }
    await assert.rejects(store.append('refused-1', [{ type: 'Added', data: {} }]), { code: 'STORAGE' });
    await store.append('kept-1', [{ type: 'Added', data: {} }]);
    assert.equal(store.stats().carriedNotifications, 1, 'the next append carried the notification');
  });

  it('when PostgreSQL refuses the notification (its queue is full: 54000 at commit), appends still succeed, without carrying it', async () => {
    // A full notification queue needs gigabytes of unread notifications. Here the
    // server raises the same error from a function that shadows pg_notify on the
    // store's connections (search_path puts pg_catalog last).
    const shadow = testSchema('notify_shadow');
    schemas.push(shadow);
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA "${shadow}"`);
      await admin.query(`CREATE FUNCTION "${shadow}".pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'too many notifications in the NOTIFY queue' USING ERRCODE = '54000'; END $$`);
    } finally {
      await admin.end();
    }
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 4, options: `-c search_path=${shadow},pg_catalog` });
    cleanups.push(() => pool.end());
    const store = await open('notify_full', { pool, notifyIntervalMs: 0 });

    const one = await store.append('full-1', [{ type: 'Added', data: {} }], { expectedVersion: 'no-stream' });
    const two = await store.append('full-1', [{ type: 'Added', data: {} }], { expectedVersion: 1 });
    const batch = await Promise.all(
      Array.from({ length: 16 }, (_, i) => store.append(`full-b-${i}`, [{ type: 'Added', data: { i } }])),
    );
    assert.equal(two.version, 2);
    const events = [];
    for await (const event of store.readAll()) events.push(event);
    assert.equal(events.length, 18, 'every append stored, once');
    assert.deepEqual(
      events.slice(0, 2).map((e) => e.position),
      [one.position, two.position],
    );
    assert.equal(store.stats().carriedNotifications, 0);
    assert.equal(new Set(batch.map((r) => r.position)).size, 16);
  });
});
