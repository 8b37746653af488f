import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter, type DeadLetterStore, type Message, type Transport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getNatsTransport } from '@factline/nats';
import { getRabbitTransport, type RabbitTransport } from '@factline/rabbitmq';
import { getRedisTransport } from '@factline/redis';
import { getSqliteDeadLetterStore, getSqliteEventStore, openSqliteDatabase } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../../nats/src/fixtures/server.ts';
import { amqpUrl, rabbitUnavailable, removeTopology } from '../../rabbitmq/src/fixtures/server.ts';
import { redisUnavailable, redisUrl, removeKeys } from '../../redis/src/fixtures/server.ts';
import { assertOneLine } from './fixtures/assert-output.ts';
import { runFactline, runJson } from './fixtures/run-factline.ts';

/** A broker an application runs on, with non-default options the CLI cannot know (it must declare nothing). */
interface Broker {
  name: string;
  url: string;
  unavailable(): Promise<string | false>;
  open(application: string): Promise<Transport>;
  remove(application: string, transport: Transport | undefined): Promise<void>;
}

const brokers: Broker[] = [
  {
    name: 'RabbitMQ',
    url: amqpUrl,
    unavailable: rabbitUnavailable,
    open: (application) => getRabbitTransport({ url: amqpUrl, application, partitions: 3, deliveryLimit: 9 }),
    remove: (_, transport) => removeTopology([transport as RabbitTransport | undefined]),
  },
  {
    name: 'NATS',
    url: natsUrl,
    unavailable: natsUnavailable,
    open: (application) => getNatsTransport({ url: natsUrl, application, partitions: 3, maxDeliver: 7 }),
    remove: (application) => removeStreams([application]),
  },
  {
    name: 'Redis',
    url: redisUrl,
    unavailable: redisUnavailable,
    open: (application) => getRedisTransport({ url: redisUrl, application, partitions: 3 }),
    remove: (application) => removeKeys(application),
  },
];

/** A dead letter of `consumer` on topic `orders`, as a consumer's dead-letter store keeps it. */
const deadLetter = (id: string, consumer: string, message: Message): DeadLetter => ({
  id,
  consumer,
  topic: 'orders',
  message,
  error: { type: 'NonRetryableError', message: `${consumer} refused it` },
  reason: 'non-retryable',
  attempts: 1,
  firstFailureAt: new Date('2026-01-01T00:00:00Z'),
  lastFailureAt: new Date('2026-01-01T00:00:00Z'),
  deadLetteredAt: new Date('2026-01-01T00:00:00Z'),
  redrives: [],
  state: 'dead',
});

for (const broker of brokers) {
  const skip = await broker.unavailable();
  describe(`factline dlq: dead letters in SQLite, redriven through ${broker.name}`, { skip }, () => {
    const application = testApplication('cli_redrive');
    const dir = mkdtempSync(join(tmpdir(), 'factline-redrive-'));
    const file = join(dir, 'app.db');
    const flags = ['--db', `sqlite:${file}`, '--transport', broker.url, '--app', application];
    let transport: Transport | undefined;
    let database: Database;
    let store: DeadLetterStore;
    const message = createMessage({ type: 'OrderPlaced', key: 'order-7', data: { order: 7 } });

    before(async () => {
      transport = await broker.open(application);
      await transport.declareSubscription('orders', 'billing');
      await transport.declareSubscription('orders', 'shipping');
      // The application's file: its event store (what the CLI opens) and its consumers' dead letters.
      await getSqliteEventStore({ path: file }).close();
      database = openSqliteDatabase(file);
      store = getSqliteDeadLetterStore({ database });
      await store.add(deadLetter('billing-record', 'billing', message));
      await store.add(
        deadLetter('ghost-record', 'nobody', createMessage({ type: 'OrderPlaced', key: 'order-8', data: {} })),
      );
    });

    after(async () => {
      await transport?.close();
      database?.close();
      await broker.remove(application, transport);
      rmSync(dir, { recursive: true, force: true });
    });

    it('redrive sends the message to its group only, then marks the record', async () => {
      const billing = transport?.subscribe('orders', 'billing');
      const shipping = transport?.subscribe('orders', 'shipping');
      const signal = new AbortController().signal;
      try {
        const run = await runFactline(['dlq', 'redrive', 'billing-record', '--yes', ...flags]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout.trim(), '1 dead letter redriven');
        let got: Message | undefined;
        await waitUntil(async () => {
          const [delivery] = (await billing?.receive(1, 200, signal)) ?? [];
          if (delivery) {
            got = delivery.message;
            await delivery.ack();
          }
          return got !== undefined;
        }, 'the redriven message at billing');
        assert.equal(got?.id, message.id);
        assert.deepEqual(got?.data, message.data);
        assert.deepEqual(await shipping?.receive(1, 300, signal), [], 'the other group of the topic gets nothing');
        const record = await store.get('billing-record');
        assert.equal(record?.state, 'redriven');
        assert.equal(record?.redrives.length, 1);
        const listed = await runJson<DeadLetter[]>(['dlq', 'ls', '--state', 'redriven', ...flags]);
        assert.deepEqual(
          listed.map((r) => r.id),
          ['billing-record'],
        );
      } finally {
        await billing?.close();
        await shipping?.close();
      }
    });

    it('a group not declared there is refused before anything changes (FACTLINE_TRANSPORT and FACTLINE_APP)', async () => {
      const run = await runFactline(['dlq', 'redrive', 'ghost-record', '--yes', '--db', `sqlite:${file}`], {
        env: { FACTLINE_TRANSPORT: broker.url, FACTLINE_APP: application },
      });
      assert.equal(run.code, 2);
      assertOneLine(
        run.stderr,
        new RegExp(
          `^factline: cannot redrive ghost-record: group 'nobody' is not declared for topic 'orders' in the ${broker.name} application '${application}'`,
        ),
      );
      assert.equal((await store.get('ghost-record'))?.state, 'dead');
    });
  });
}

describe('factline dlq --transport: its options', () => {
  it('names a broker by its URL and needs the application', async () => {
    const scheme = await runFactline(['dlq', 'ls', '--db', 'sqlite:./nothing.db', '--transport', 'ftp://u:secret@h']);
    assert.equal(scheme.code, 2);
    assertOneLine(
      scheme.stderr,
      /^factline: --transport ftp:\/\/u:\*\*\*@h: not an amqp:\/\/, nats:\/\/ or redis:\/\/ URL/,
    );
    const app = await runFactline(['dlq', 'redrive', 'x', '--db', 'sqlite:./nothing.db', '--transport', amqpUrl]);
    assert.equal(app.code, 2);
    assertOneLine(app.stderr, /^factline: a RabbitMQ --transport needs the application: give --app <name>/);
  });

  it('goes with the dlq commands and ui on a database only', async () => {
    const streams = await runFactline(['streams', 'ls', '--db', 'sqlite:./nothing.db', '--transport', natsUrl]);
    assert.equal(streams.code, 2);
    assertOneLine(streams.stderr, /^factline: --transport applies to the dlq commands and ui only$/);
    const redis = await runFactline(['dlq', 'ls', '--db', redisUrl, '--app', 'shop', '--transport', amqpUrl]);
    assert.equal(redis.code, 2);
    assertOneLine(
      redis.stderr,
      /^factline: --transport applies to dead letters kept in a database: a redis:\/\/ --db redrives through its own Redis transport$/,
    );
  });
});
