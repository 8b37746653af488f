import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, type Delivery, type Message, type Subscription } from '@factline/core';
import { testTransportConformance, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { migratePostgres } from '../migrations.ts';
import { getPostgresTransport, type PostgresTransport } from './postgres-transport.ts';
import { transportMigrations } from './postgres-transport-migrations.ts';
import { transportChannel } from './postgres-wake-ups.ts';

const skip = await postgresUnavailable();
const conformanceSchema = testSchema('transport_conf');

testTransportConformance({
  name: 'postgres',
  skip,
  createTransport: () =>
    getPostgresTransport({ connectionString: postgresUrl, schema: conformanceSchema, poolSize: 4 }),
  teardown: () => dropSchema(conformanceSchema),
});

const never = () => new AbortController().signal;
const messages = (count: number, label: string): Message[] =>
  Array.from({ length: count }, (_, i) =>
    createMessage({ type: 'Tested', key: `${label}-${i % 16}`, data: { label, i } }),
  );

describe('postgres transport', { skip }, () => {
  const schema = testSchema('transport');
  const open: PostgresTransport[] = [];
  const transport = async (settings: { listen?: boolean; pollIntervalMs?: number } = {}) => {
    const created = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 4, ...settings });
    open.push(created);
    return created;
  };
  let topicCount = 0;
  const topic = () => `topic-${topicCount++}`;

  before(async () => {
    // The first open creates the schema; later ones find nothing to migrate.
    await transport();
  });

  after(async () => {
    await Promise.all(open.map((t) => t.close()));
    await dropSchema(schema);
  });

  it('the queue table: only the primary key starts with (topic, group_name), and a hand-out leaves room for HOT updates', async () => {
    const created = await transport();
    const indexes = await created.pool.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'transport_messages' ORDER BY indexname`,
      [schema],
    );
    // A second index led by (topic, group_name) let the planner, without statistics, serve acks and
    // claims from it and scan the whole group per statement. The trace's index reads `message` only.
    assert.deepEqual(
      indexes.rows.map((row) => row.indexdef.replace(/^.* USING btree /, '')),
      [
        "((((message -> 'metadata'::text) ->> 'correlationId'::text)))",
        '(id, topic, group_name)',
        '(topic, group_name, seq)',
      ],
    );
    const options = await created.pool.query<{ reloptions: string[] | null }>(
      `SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = 'transport_messages'`,
      [schema],
    );
    assert.deepEqual(options.rows[0]?.reloptions, ['fillfactor=80']);
  });

  it('migration 2 on a queue written by version 1: the waiting messages are kept, delivered once, and a repeated publish is still a no-op', async () => {
    const old = testSchema('transport_v1');
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
    try {
      await migratePostgres(pool, old, 'transport', transportMigrations.slice(0, 1));
      const waiting = messages(3, 'v1');
      await pool.query(`INSERT INTO "${old}".transport_groups (topic, group_name) VALUES ('orders', 'billing')`);
      for (const message of waiting) {
        await pool.query(
          `INSERT INTO "${old}".transport_messages (topic, group_name, id, key, message, visible_at)
           VALUES ('orders', 'billing', $1, $2, $3, now())`,
          [message.id, message.key, JSON.stringify(message)],
        );
      }
      const upgraded = await getPostgresTransport({ pool, schema: old });
      // Published again after the upgrade: the reordered unique constraint still finds the duplicates.
      await upgraded.publish('orders', waiting);
      const subscription = upgraded.subscribe('orders', 'billing');
      const received = await subscription.receive(10, 0, never());
      assert.deepEqual(
        received.map((d) => d.message.id),
        waiting.map((m) => m.id),
      );
      for (const delivery of received) await delivery.ack();
      assert.deepEqual(await subscription.receive(10, 0, never()), []);
      await subscription.close();
    } finally {
      await pool.end();
      await dropSchema(old);
    }
  });

  it('two pools (two processes) competing for one group: 2,000 messages, each held by one at a time, acked once', async () => {
    const one = await transport();
    const two = await transport();
    const name = topic();
    const group = 'workers';
    const subscriptions = [one.subscribe(name, group), two.subscribe(name, group)];
    // The group exists (published messages reach it) once a receive has run.
    await Promise.all(subscriptions.map((s) => s.receive(1, 0, never())));
    const total = 2000;
    const published = messages(total, 'race');
    const inFlight = new Set<string>();
    const acked = new Map<string, number>();
    const perPool = [0, 0];
    let overlap = 0;
    const work = async (sub: Subscription, pool: number) => {
      const deadline = Date.now() + 30_000;
      while (acked.size < total && Date.now() < deadline) {
        const got = await sub.receive(25, 50, never());
        for (const delivery of got) {
          if (inFlight.has(delivery.message.id)) overlap += 1;
          inFlight.add(delivery.message.id);
        }
        perPool[pool] = (perPool[pool] ?? 0) + got.length;
        await Promise.all(
          got.map(async (delivery: Delivery) => {
            await delivery.ack();
            acked.set(delivery.message.id, (acked.get(delivery.message.id) ?? 0) + 1);
            inFlight.delete(delivery.message.id);
          }),
        );
      }
    };
    const publishing = (async () => {
      for (let i = 0; i < total; i += 200) await one.publish(name, published.slice(i, i + 200));
    })();
    // Three competing loops per pool.
    await Promise.all([
      publishing,
      ...[0, 1, 2].flatMap(() => [
        work(subscriptions[0] as Subscription, 0),
        work(subscriptions[1] as Subscription, 1),
      ]),
    ]);
    assert.equal(overlap, 0, 'a message was handed to two consumers at once');
    assert.equal(acked.size, total, 'every message acked');
    assert.ok(
      [...acked.values()].every((n) => n === 1),
      'a message was acked twice',
    );
    assert.ok((perPool[0] ?? 0) > 0 && (perPool[1] ?? 0) > 0, `both pools got work: ${perPool.join(' / ')}`);
    const { rows } = await one.pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".transport_messages WHERE topic = $1`,
      [name],
    );
    assert.equal(rows[0].n, 0, 'nothing left in the queue');
  });

  it('createConsumer end to end: the handler writes one row per message in the same database', async () => {
    const t = await transport();
    const name = topic();
    await t.pool.query(`CREATE TABLE "${schema}".handled (id text NOT NULL, n integer NOT NULL)`);
    let failures = 0;
    const consumer = createConsumer({
      name: 'writer',
      topic: name,
      transport: t,
      pollMs: 100,
      // stop() races the drain against a timer it does not clear: keep it short so the file ends promptly.
      drainTimeoutMs: 500,
      concurrency: 4,
      retryPolicy: () => ({ action: 'retry', delayMs: 0 }),
      handler: async (message) => {
        const data = message.data as { i: number };
        // A few transient failures: the retry must not write twice.
        if (data.i % 50 === 7 && failures < 5) {
          failures += 1;
          throw new Error('transient');
        }
        await t.pool.query(`INSERT INTO "${schema}".handled (id, n) VALUES ($1, $2)`, [message.id, data.i]);
      },
    });
    await consumer.start();
    const published = messages(300, 'consumer');
    // Wait until the consumer's group is registered, then publish in a few batches.
    const probe = t.subscribe(name, 'writer');
    await probe.receive(1, 0, never()).then((got) => Promise.all(got.map((d) => d.release(0))));
    await probe.close();
    for (let i = 0; i < published.length; i += 100) await t.publish(name, published.slice(i, i + 100));
    const deadline = Date.now() + 20_000;
    let count = 0;
    while (Date.now() < deadline) {
      const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM "${schema}".handled`);
      count = rows[0].n;
      if (count >= published.length) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await consumer.stop();
    const { rows } = await t.pool.query(
      `SELECT count(*)::int AS total, count(DISTINCT id)::int AS distinct_ids FROM "${schema}".handled`,
    );
    assert.equal(rows[0].total, published.length, 'one row per message');
    assert.equal(rows[0].distinct_ids, published.length, 'each id exactly once');
    const ids = await t.pool.query(`SELECT id FROM "${schema}".handled`);
    assert.deepEqual(ids.rows.map((r) => r.id).sort(), published.map((m) => m.id).sort());
    assert.equal(consumer.stats().handled, published.length);
    assert.ok(consumer.stats().retries >= 1);
    const left = await t.pool.query(`SELECT count(*)::int AS n FROM "${schema}".transport_messages WHERE topic = $1`, [
      name,
    ]);
    assert.equal(left.rows[0].n, 0, 'every message acked');
  });

  it('a waiting receive in one process wakes on a publish from another (LISTEN/NOTIFY)', async () => {
    const listening = await transport();
    const publisher = await transport({ listen: false });
    const name = topic();
    const sub = listening.subscribe(name, 'g');
    // Registers the group and starts listening; wait until the listen connection is up.
    await sub.receive(1, 50, never());
    const startedAt = Date.now();
    const pending = sub.receive(10, 20_000, never());
    await new Promise((resolve) => setTimeout(resolve, 100));
    const message = createMessage({ type: 'Tested', data: {} });
    await publisher.publish(name, [message]);
    const got = await pending;
    assert.deepEqual(
      got.map((d) => d.message.id),
      [message.id],
    );
    assert.ok(Date.now() - startedAt < 2000, 'woken by the notification, not by waitMs');
    await Promise.all(got.map((d) => d.ack()));
  });

  it('a LISTEN connection that drops is told to onError once per drop; receivers poll meanwhile and it listens again', async () => {
    const errors: { error: unknown; stage: string }[] = [];
    // A schema of its own: its channel is heard by this transport's connection alone.
    const own = testSchema('transport_listen');
    const settings = { connectionString: postgresUrl, schema: own, poolSize: 2 };
    const listening = await getPostgresTransport({
      ...settings,
      pollIntervalMs: 50,
      onError: (error, { stage }) => errors.push({ error, stage }),
    });
    const publisher = await getPostgresTransport({ ...settings, listen: false });
    try {
      const name = topic();
      const sub = listening.subscribe(name, 'g');
      await sub.receive(1, 50, never());
      const listen = `LISTEN "${transportChannel(own)}"`;
      // Its LISTEN answered (idle after it), not only sent: a drop while the transport still awaits the answer
      // is part of the run of failures told before, and is not told again.
      const listenPids = async () =>
        (
          await listening.pool.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'factline-transport-listen' AND query = $1 AND state = 'idle'",
            [listen],
          )
        ).rows.map((row) => row.pid);
      for (let drop = 1; drop <= 2; drop++) {
        await waitUntil(async () => (await listenPids()).length === 1, `listening (${drop})`);
        await listening.pool.query('SELECT pg_terminate_backend($1)', await listenPids());
        await waitUntil(() => errors.length === drop, `drop ${drop} told`);
        const told = errors[drop - 1] as { error: Error & { code?: string }; stage: string };
        assert.equal(told.stage, 'listen');
        assert.equal(told.error.code, 'STORAGE');
        assert.match(told.error.message, /the transport cannot LISTEN on .* waiting receivers poll every 50 ms/);
        const message = createMessage({ type: 'Tested', data: { drop } });
        const pending = sub.receive(1, 10_000, never());
        await publisher.publish(name, [message]);
        const got = await pending;
        assert.deepEqual(
          got.map((d) => d.message.id),
          [message.id],
        );
        await Promise.all(got.map((d) => d.ack()));
      }
      assert.equal(errors.length, 2, 'each drop told once');
    } finally {
      await listening.close();
      await publisher.close();
      await dropSchema(own);
    }
  });

  it('without LISTEN, a waiting receive finds messages by polling', async () => {
    const polling = await transport({ listen: false, pollIntervalMs: 50 });
    const publisher = await transport({ listen: false });
    const name = topic();
    const sub = polling.subscribe(name, 'g');
    await sub.receive(1, 0, never());
    const pending = sub.receive(10, 20_000, never());
    const message = createMessage({ type: 'Tested', data: {} });
    const publishedAt = Date.now();
    await publisher.publish(name, [message]);
    const got = await pending;
    assert.deepEqual(
      got.map((d) => d.message.id),
      [message.id],
    );
    assert.ok(Date.now() - publishedAt < 1000, 'found by the next poll');
    await Promise.all(got.map((d) => d.ack()));
  });

  it('publishing an id a group still holds is a no-op; values travel as parameters', async () => {
    const t = await transport();
    const name = `it's "quoted"; DROP TABLE x; --`;
    const sub = t.subscribe(name, `group ' "`);
    await sub.receive(1, 0, never());
    const message = createMessage({ type: 'Tested', id: `id'); --`, data: { text: `'"\\` } });
    await t.publish(name, [message]);
    await t.publish(name, [message, message]);
    const got = await sub.receive(10, 200, never());
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]?.message, message);
    await got[0]?.ack();
  });

  it('rejects bad names and unserializable messages', async () => {
    const t = await transport();
    await assert.rejects(getPostgresTransport({ connectionString: postgresUrl, schema: 'Bad-Schema' }), {
      code: 'VALIDATION',
    });
    assert.throws(() => t.subscribe('', 'g'), { code: 'VALIDATION' });
    await assert.rejects(t.publish('', []), { code: 'VALIDATION' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const message = { ...createMessage({ type: 'Tested', data: {} }), data: circular };
    await assert.rejects(t.publish('t', [message]), { code: 'VALIDATION' });
  });

  it('names its NOTIFY channel within the 63-byte limit', () => {
    assert.equal(transportChannel('app'), 'factline_transport_app');
    assert.ok(transportChannel('s'.repeat(63)).length <= 63);
    assert.notEqual(transportChannel('s'.repeat(63)), transportChannel(`${'s'.repeat(62)}t`));
  });
});
