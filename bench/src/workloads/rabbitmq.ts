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
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redactUrl } from '@factline/core/adapter';
import { getRabbitTransport, type RabbitTransport } from '@factline/rabbitmq';
import amqp from 'amqplib';
import type { Database } from 'better-sqlite3';
import type { Trial, Workload } from '../harness.ts';
import { benchPayload, sqliteEndToEnd, subjectsUnless, transportTrial, uniqueName } from './transport-trials.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_RABBITMQ_MESSAGES ?? 5000);
const url = process.env.FACTLINE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const dir = join(tmpdir(), `factline-bench-rabbitmq-${process.pid}`);

async function unavailable(): Promise<string | undefined> {
  try {
    const connection = await amqp.connect(url, { timeout: 3000 });
    await connection.close();
    return undefined;
  } catch (error) {
    return `RabbitMQ at ${redactUrl(url)} does not answer: ${(error as Error).message}`;
  }
}

/** A raw amqplib trial on one quorum queue of its own, deleted afterwards. */
function rawTrial(kind: 'publish' | 'consume' | 'e2e'): Trial {
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const queue = uniqueName('raw');
  const bodies = Array.from({ length: MESSAGES }, (_, i) => Buffer.from(JSON.stringify(benchPayload(i))));
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
  const application = uniqueName('factline');
  return transportTrial<RabbitTransport, Database>({
    workload: 'rabbitmq-e2e',
    kind,
    paced,
    messages: MESSAGES,
    open: (partitions) => getRabbitTransport({ url, application, partitions, prefetch: 64 }),
    endToEnd: () => sqliteEndToEnd(dir, application),
    ackInTurn: true,
    removeLeftovers: async (transport) => {
      const connection = await amqp.connect(url);
      try {
        for (const queue of transport.declared.queues) {
          const channel = await connection.createChannel();
          channel.on('error', () => undefined);
          await channel.deleteQueue(queue).catch(() => undefined);
          await channel.close().catch(() => undefined);
        }
        const channel = await connection.createChannel();
        for (const exchange of transport.declared.exchanges)
          await channel.deleteExchange(exchange).catch(() => undefined);
      } finally {
        await connection.close();
      }
    },
  });
}

const subject = subjectsUnless(unavailable);

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
