import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type Consumer,
  createConsumer,
  defineEventRelay,
  type Message,
  type Transport,
  type TransportPublishOptions,
} from '@factline/core';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresOutbox, type PostgresOutbox, startPostgresOutboxRelay } from '../outbox/postgres-outbox.ts';
import { startPostgresProjections } from '../projections/postgres-projections.ts';
import { getPostgresEventStore, type PostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresInbox, type PostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport, type PostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const schema = testSchema('relay_kill');
const s = `"${schema}"`;
const childScript = new URL('./fixtures/relay-child.ts', import.meta.url).pathname;

interface Child extends TestChild {
  /** The ids of each publish the child saw resolve, in order. */
  published(): string[][];
}

function startRelayChild(kind: 'events' | 'outbox', topic: string, name: string): Child {
  const started = spawnTestChild(childScript, [schema, kind, topic, name], { FACTLINE_POSTGRES_URL: postgresUrl });
  const published = () => [...started.stdout().matchAll(/^published (\S+)$/gm)].map((m) => (m[1] as string).split(','));
  return { ...started, published };
}

describe('postgres relays: killed with SIGKILL between a publish and recording it', { skip }, () => {
  let store: PostgresEventStore;
  let transport: PostgresTransport;
  let inbox: PostgresInbox;
  let outbox: PostgresOutbox;
  const rows = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> =>
    (await transport.pool.query<R>(text, values)).rows;
  const count = async (text: string, values: unknown[] = []) =>
    (await rows<{ n: number }>(text, values))[0]?.n ?? Number.NaN;

  before(async () => {
    store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 4 });
    transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 6, pollIntervalMs: 50 });
    inbox = await getPostgresInbox({ pool: transport.pool, schema });
    outbox = await getPostgresOutbox({ pool: store.pool, schema });
    // No unique constraint: an effect applied twice would show as two rows.
    await transport.pool.query(`CREATE TABLE ${s}.test_effects (
      seq bigserial PRIMARY KEY, consumer text NOT NULL, message_id text NOT NULL, key text NOT NULL)`);
  });

  // Stopped in after() too: a test failing before its own stop must not leave
  // a polling consumer that keeps the test process alive.
  const consumers: { stop(): Promise<void> }[] = [];

  after(async () => {
    await Promise.allSettled(consumers.map((consumer) => consumer.stop()));
    await transport?.close();
    await store?.close();
    await dropSchema(schema);
  });

  /** A consumer applying each message once (PostgreSQL inbox), its group registered before anything is published. */
  async function startConsumer(topic: string, group: string) {
    const registration = transport.subscribe(topic, group);
    await registration.receive(1, 0, new AbortController().signal);
    await registration.close();
    const consumer = createConsumer<pg.PoolClient>({
      name: group,
      topic,
      transport,
      inbox,
      pollMs: 50,
      visibilityTimeoutMs: 5000,
      async handler(message, client) {
        await client.query(`INSERT INTO ${s}.test_effects (consumer, message_id, key) VALUES ($1, $2, $3)`, [
          group,
          message.id,
          message.key,
        ]);
      },
    });
    consumers.push(consumer);
    await consumer.start();
    return consumer;
  }

  const effectsOf = (group: string) =>
    rows<{ message_id: string; key: string }>(
      `SELECT message_id, key FROM ${s}.test_effects WHERE consumer = $1 ORDER BY seq`,
      [group],
    );
  const queued = (topic: string) =>
    count(`SELECT count(*)::int AS n FROM ${s}.transport_messages WHERE topic = $1`, [topic]);

  /** The transport, recording the ids of every publish that resolved. */
  function counting(published: string[][]): Transport {
    return {
      ...transport,
      async publish(topic: string, messages: readonly Message[], options?: TransportPublishOptions) {
        await transport.publish(topic, messages, options);
        published.push(messages.map((m) => m.id));
      },
    };
  }

  /** Waits until `consumer` handled `handled` messages and none of `topic` is left in the transport. */
  const appliedAll = (consumer: Consumer, topic: string, handled: number, what: string) =>
    waitUntil(async () => consumer.stats().handled === handled && (await queued(topic)) === 0, what, 20_000, 20);

  /**
   * After the kill: the next relay published the killed batch again, then the later messages; the repeats
   * reached the consumer and its inbox dropped them; each message applied once, in order per key.
   */
  async function assertAppliedOnce(check: {
    consumer: Consumer;
    group: string;
    againPublished: string[][];
    /** How many the killed relay had published: each reached the consumer twice. */
    repeated: number;
    relayed: readonly { id: string; key: string }[];
    labels: { againPublished: string; once: string; order: string };
  }) {
    const { consumer, relayed, labels } = check;
    assert.deepEqual(
      check.againPublished.flat(),
      relayed.map((m) => m.id),
      labels.againPublished,
    );
    // The repeats reached the consumer again and its inbox dropped them.
    assert.deepEqual(consumer.stats(), {
      state: 'running',
      errors: 0,
      lastError: undefined,
      handled: relayed.length,
      duplicates: check.repeated,
      retries: 0,
      deadLettered: 0,
      discarded: 0,
    });
    const effects = await effectsOf(check.group);
    assert.deepEqual(effects.map((e) => e.message_id).sort(), relayed.map((m) => m.id).sort(), labels.once);
    for (const key of new Set(relayed.map((m) => m.key))) {
      assert.deepEqual(
        effects.filter((e) => e.key === key).map((e) => e.message_id),
        relayed.filter((m) => m.key === key).map((m) => m.id),
        `${key} ${labels.order}`,
      );
    }
  }

  it('the event store as outbox: the batch is published again by the next relay and applied once', {
    timeout: 60_000,
  }, async () => {
    const topic = 'orders-events';
    const group = 'billing-events';
    const consumer = await startConsumer(topic, group);
    const name = `factline-relay-events-${process.pid}`;
    // Appended before the relay starts: its first batch holds them all.
    const appended = [];
    for (let i = 0; i < 6; i++) {
      const result = await store.append(`order-${i % 3}`, [
        { type: 'OrderPlaced', data: { i } },
        ...(i % 2 === 1 ? [{ type: 'Internal', data: { i } }] : []),
      ]);
      appended.push(...result.events);
    }
    const first = appended.filter((e) => e.type === 'OrderPlaced');
    const victim = startRelayChild('events', topic, name);
    const againPublished: string[][] = [];
    let runner: Awaited<ReturnType<typeof startPostgresProjections>> | undefined;
    try {
      await waitUntil(() => victim.published().length > 0, 'the relay to publish', 20_000);
      assert.deepEqual(victim.published(), [first.map((e) => e.id)], 'one batch, in log order, handled types only');
      // The consumer applies them and acks them (gone from the transport), while the relay hangs.
      await appliedAll(consumer, topic, first.length, 'the consumer to apply the batch');
      // The batch's transaction (checkpoint row locked) is still open: nothing recorded.
      assert.ok(
        (await count(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`,
          [name],
        )) >= 1,
        'the relay holds its batch transaction open',
      );
      assert.deepEqual(await rows(`SELECT position FROM ${s}.projections WHERE name = 'relay' AND position > 0`), []);
      victim.child.kill('SIGKILL');
      await victim.exited;

      // The next relay takes the lease and starts again from the checkpoint.
      runner = await startPostgresProjections(
        store,
        [defineEventRelay({ name: 'relay', transport: counting(againPublished), topic, handles: ['OrderPlaced'] })],
        { leaseCheckMs: 100, idleCheckMs: 100, leaseApplicationName: `${name}-next` },
      );
      await runner.waitFor('relay', first.at(-1)?.position ?? 0, { timeoutMs: 20_000 });
      const later = (await store.append('order-0', [{ type: 'OrderPlaced', data: { i: 6 } }])).events;
      await runner.waitFor('relay', later.at(-1)?.position ?? 0, { timeoutMs: 20_000 });
      const relayed = [...first, ...later];
      await appliedAll(consumer, topic, relayed.length, 'the consumer to apply the event appended after the kill');

      await assertAppliedOnce({
        consumer,
        group,
        againPublished,
        repeated: first.length,
        relayed: relayed.map((e) => ({ id: e.id, key: e.streamId })),
        labels: {
          againPublished: 'the killed batch was published again, then the new event',
          once: 'one effect per event',
          order: 'applied in stream order',
        },
      });
    } finally {
      victim.child.kill('SIGKILL');
      await victim.exited;
      await runner?.stop();
      await consumer.stop();
    }
  });

  it('the transactional outbox: rows not deleted are published again by the next relay and applied once', {
    timeout: 60_000,
  }, async () => {
    const topic = 'orders-outbox';
    const group = 'billing-outbox';
    const consumer = await startConsumer(topic, group);
    const name = `factline-relay-outbox-${process.pid}`;
    const enqueue = async (keys: string[]) => {
      const client = await store.pool.connect();
      try {
        await client.query('BEGIN');
        const messages = await outbox.enqueue(
          client,
          topic,
          keys.map((key, i) => ({ type: 'OrderPlaced', data: { i }, key })),
        );
        await client.query('COMMIT');
        return messages;
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    };
    const first = await enqueue(['o-1', 'o-2', 'o-1', 'o-3', 'o-2']);
    const victim = startRelayChild('outbox', topic, name);
    const againPublished: string[][] = [];
    let relay: Awaited<ReturnType<typeof startPostgresOutboxRelay>> | undefined;
    try {
      await waitUntil(() => victim.published().length > 0, 'the relay to publish', 20_000);
      assert.deepEqual(victim.published(), [first.map((m) => m.id)], 'the rows, in outbox order');
      await appliedAll(consumer, topic, first.length, 'the consumer to apply them');
      assert.equal(await outbox.pending(), first.length, 'the rows stay until the relay deletes them');
      victim.child.kill('SIGKILL');
      await victim.exited;

      relay = await startPostgresOutboxRelay(outbox, counting(againPublished), {
        pollMs: 20,
        leaseCheckMs: 100,
        leaseApplicationName: `${name}-next`,
      });
      await waitUntil(async () => (await outbox.pending()) === 0, 'the next relay to publish the rows', 20_000, 20);
      const later = await enqueue(['o-1']);
      const relayed = [...first, ...later];
      await waitUntil(
        async () =>
          (await outbox.pending()) === 0 && consumer.stats().handled === relayed.length && (await queued(topic)) === 0,
        'the consumer to apply the message enqueued after the kill',
        20_000,
        20,
      );

      await assertAppliedOnce({
        consumer,
        group,
        againPublished,
        repeated: first.length,
        relayed,
        labels: {
          againPublished: 'the killed rows were published again, then the new one',
          once: 'one effect per message',
          order: 'applied in outbox order',
        },
      });
    } finally {
      victim.child.kill('SIGKILL');
      await victim.exited;
      await relay?.stop();
      await consumer.stop();
    }
  });
});
