/**
 * RabbitMQ workloads (`npm run bench -- rabbitmq`), against the broker at FACTLINE_AMQP_URL:
 * - `rabbitmq-publish`: MESSAGES persistent messages published with confirms, all in flight
 *   (raw: amqplib confirm channel into one quorum queue, `waitForConfirms`; factline:
 *   `transport.publish` in batches of 100 to a group of 4 partitions).
 * - `rabbitmq-consume`: MESSAGES already queued, received and acked one by one (raw: amqplib
 *   `consume` with prefetch 64; factline: a subscription's `receive` loop, prefetch 64 per partition).
 * - `rabbitmq-e2e`: publish MESSAGES, consume and ack; rate = first publish → last ack (raw:
 *   amqplib, one queue; factline: `transport.publish` → `createConsumer` with the retry policy, the
 *   SQLite inbox and per-key lanes (8), its handler one INSERT in the inbox's transaction).
 *   `factline-half` then runs at half the factline rate measured: p50/p99 = publish resolved → handled (µs).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, createConsumer, createMessage, type Message } from '@factline/core';
import { getRabbitTransport, type RabbitTransport } from '@factline/rabbitmq';
import { getSqliteDeadLetterStore, getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import amqp from 'amqplib';
import { report, type Subject, type Trial, type Workload } from '../harness.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_RABBITMQ_MESSAGES ?? 5000);
const url = process.env.FACTLINE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const dir = join(tmpdir(), `factline-bench-rabbitmq-${process.pid}`);
let counter = 0;
/** The factline end-to-end rate measured last: `factline-half` runs at half of it. */
let factlineRate = 0;

const unique = (label: string) => `bench_${label}_${process.pid}_${++counter}`;
const payload = (i: number) => ({ i, total: 10 + (i % 90), sku: `sku-${i % 100}` });
const messages = (count: number): Message[] =>
  Array.from({ length: count }, (_, i) => createMessage({ type: 'Bench', key: `k-${i % 100}`, data: payload(i) }));

async function unavailable(): Promise<string | undefined> {
  try {
    const connection = await amqp.connect(url, { timeout: 3000 });
    await connection.close();
    return undefined;
  } catch (error) {
    return `RabbitMQ at ${url.replace(/:[^:@/]*@/, ':***@')} does not answer: ${(error as Error).message}`;
  }
}

/** A raw amqplib trial on one quorum queue of its own, deleted afterwards. */
function rawTrial(kind: 'publish' | 'consume' | 'e2e'): Trial {
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const queue = unique('raw');
  const bodies = Array.from({ length: MESSAGES }, (_, i) => Buffer.from(JSON.stringify(payload(i))));
  const publishAll = async () => {
    for (const body of bodies) {
      if (!channel.publish('', queue, body, { persistent: true })) await new Promise((r) => channel.once('drain', r));
    }
    await channel.waitForConfirms();
  };
  const consumeAll = async () => {
    const consumer = await connection.createChannel();
    await consumer.prefetch(64);
    let acked = 0;
    await new Promise<void>((resolve) => {
      void consumer.consume(queue, (message) => {
        if (!message) return;
        consumer.ack(message);
        if (++acked === MESSAGES) resolve();
      });
    });
    await consumer.close();
  };
  return {
    setup: async () => {
      connection = await amqp.connect(url);
      channel = await connection.createConfirmChannel();
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      if (kind === 'consume') await publishAll();
    },
    run: async () => {
      if (kind === 'publish') await publishAll();
      else if (kind === 'consume') await consumeAll();
      else await Promise.all([publishAll(), consumeAll()]);
      return MESSAGES;
    },
    teardown: async () => {
      await channel.deleteQueue(queue).catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}

/** A Factline trial on an application of its own; its queues are deleted afterwards. */
function factlineTrial(kind: 'publish' | 'consume' | 'e2e', paced = false): Trial {
  let transport: RabbitTransport;
  let consumer: Consumer | undefined;
  let close: () => void = () => {};
  const application = unique('factline');
  const batch = messages(MESSAGES);
  const publishedAt = new Float64Array(MESSAGES);
  const handledAt = new Float64Array(MESSAGES);
  let handled = 0;
  let allHandled: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  const publishAll = async () => {
    const size = 100;
    const pending: Promise<void>[] = [];
    const started = performance.now();
    for (let i = 0; i < batch.length; i += size) {
      if (paced) {
        const wait = started + (i * 1000) / (factlineRate / 2) - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const from = i;
      pending.push(
        transport.publish('orders', batch.slice(i, i + size)).then(() => {
          const at = performance.now();
          for (let j = from; j < Math.min(from + size, batch.length); j++) publishedAt[j] = at;
        }),
      );
      // Pipelined, with a bounded number of batches in flight.
      if (pending.length >= 8) await pending.shift();
    }
    await Promise.all(pending);
  };
  return {
    setup: async () => {
      transport = await getRabbitTransport({ url, application, partitions: 4, prefetch: 64 });
      await transport.declareSubscription('orders', 'bench');
      if (kind === 'consume') await publishAll();
      if (kind === 'e2e') {
        mkdirSync(dir, { recursive: true });
        const db = openSqliteDatabase(join(dir, `${application}.db`));
        db.exec('CREATE TABLE bench_items (id TEXT PRIMARY KEY, total REAL NOT NULL)');
        const insert = db.prepare('INSERT INTO bench_items (id, total) VALUES (?, ?)');
        close = () => db.close();
        consumer = createConsumer({
          name: 'bench',
          topic: 'orders',
          transport,
          inbox: getSqliteInbox({ database: db }),
          deadLetters: getSqliteDeadLetterStore({ database: db }),
          maxRetries: 3,
          retryDelay: [100, 1000],
          concurrency: 8,
          handler(message) {
            const { i, total } = message.data as { i: number; total: number };
            insert.run(message.id, total);
            handledAt[i] = performance.now();
            if (++handled === MESSAGES) allHandled();
          },
        });
        await consumer.start();
      }
    },
    run: async () => {
      if (kind === 'publish') await publishAll();
      else if (kind === 'consume') {
        const subscription = transport.subscribe('orders', 'bench');
        const signal = new AbortController().signal;
        let acked = 0;
        while (acked < MESSAGES) {
          const got = await subscription.receive(64, 1000, signal);
          for (const delivery of got) await delivery.ack();
          acked += got.length;
        }
        await subscription.close();
      } else {
        const started = performance.now();
        await Promise.all([publishAll(), done]);
        if (!paced) factlineRate = MESSAGES / ((performance.now() - started) / 1000);
      }
      return MESSAGES;
    },
    extras: () => {
      if (kind !== 'e2e' || !paced) return {};
      const latencies = Array.from(handledAt, (at, i) => at - (publishedAt[i] as number)).sort((a, b) => a - b);
      const at = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
      report('rabbitmq-e2e', 'factline-half.p50', at(50) * 1000, 'us');
      report('rabbitmq-e2e', 'factline-half.p99', at(99) * 1000, 'us');
      return {};
    },
    teardown: async () => {
      await consumer?.stop();
      const declared = { queues: [...transport.declared.queues], exchanges: [...transport.declared.exchanges] };
      await transport.close();
      close();
      const connection = await amqp.connect(url);
      try {
        for (const queue of declared.queues) {
          const channel = await connection.createChannel();
          channel.on('error', () => undefined);
          await channel.deleteQueue(queue).catch(() => undefined);
          await channel.close().catch(() => undefined);
        }
        const channel = await connection.createChannel();
        for (const exchange of declared.exchanges) await channel.deleteExchange(exchange).catch(() => undefined);
      } finally {
        await connection.close();
      }
    },
  };
}

const subject = (name: string, make: () => Trial, repeat?: number): Subject => ({
  name,
  ...(repeat ? { repeat } : {}),
  trial: async () => (await unavailable()) ?? make(),
});

export function removeRabbitFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

export const rabbitmqWorkloads: Workload[] = [
  {
    name: 'rabbitmq-publish',
    description: `${MESSAGES} persistent messages published with confirms, all in flight; raw = amqplib confirm channel into one quorum queue; factline = transport.publish in batches of 100 (8 in flight) to a group of 4 quorum partitions`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('publish')), subject('factline', () => factlineTrial('publish'))],
  },
  {
    name: 'rabbitmq-consume',
    description: `${MESSAGES} queued messages received and acked one by one; raw = amqplib consume (prefetch 64); factline = subscription.receive(64) loop, prefetch 64 per partition`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('consume')), subject('factline', () => factlineTrial('consume'))],
  },
  {
    name: 'rabbitmq-e2e',
    description: `${MESSAGES} messages published and handled; rate = first publish → last ack; raw = amqplib publish + consume/ack on one quorum queue; factline = transport.publish → createConsumer (retry policy, SQLite inbox, 8 key lanes, one INSERT per message); factline-half = the same at half the factline rate, p50/p99 = publish resolved → handled (µs)`,
    unit: 'msg/s',
    subjects: [
      subject('raw', () => rawTrial('e2e')),
      subject('factline', () => factlineTrial('e2e')),
      subject('factline-half', () => factlineTrial('e2e', true), 1),
    ],
  },
];
