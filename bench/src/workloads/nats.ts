/**
 * NATS JetStream workloads (`npm run bench -- nats`), against the server at FACTLINE_NATS_URL:
 * - `nats-publish`: MESSAGES ~240-byte messages published to a file-backed stream, all in flight, each
 *   resolved on its PubAck (raw: `js.publish` with `msgID`; factline: `transport.publish` in batches
 *   of 100, 8 in flight, to a group of 4 partitions).
 * - `nats-consume`: MESSAGES already stored, received and acked (raw: a durable pull consumer's
 *   `consume()`, each message acked; factline: a subscription's `receive(64)` loop, a batch's acks at
 *   once, prefetch 64 per partition); the consumer is closed after the clock stopped.
 * - `nats-e2e`: publish MESSAGES, consume and ack; rate = first publish → last ack (raw: the same two
 *   at once on one consumer; factline: `transport.publish` → `createConsumer` with the retry policy, the
 *   SQLite inbox and per-key lanes (8), its handler one INSERT in the inbox's transaction).
 *   `factline-half` then runs at half the factline rate measured: p50/p99 = publish resolved → handled (µs).
 *   `raw.node-cpu` and `factline.node-cpu`: this process's CPU (user + sys) per message, each trial.
 * The raw subjects send the same bytes as Factline's envelopes (`messageToJson`).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, createConsumer, createMessage, type Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { getNatsTransport, type NatsTransport } from '@factline/nats';
import { getSqliteDeadLetterStore, getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { report, type Subject, type Trial, type Workload } from '../harness.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_NATS_MESSAGES ?? 5000);
const url = process.env.FACTLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
const dir = join(tmpdir(), `factline-bench-nats-${process.pid}`);
let counter = 0;
/** The factline end-to-end rate measured last: `factline-half` runs at half of it. */
let factlineRate = 0;

/** Runs `work` and reports this process's CPU (user + sys) per message as `<subject>.node-cpu` (µs/msg). */
async function withCpu(subject: string, work: () => Promise<unknown>): Promise<void> {
  const own = process.cpuUsage();
  await work();
  const used = process.cpuUsage(own);
  report('nats-e2e', `${subject}.node-cpu`, (used.user + used.system) / MESSAGES, 'us/msg');
}

const unique = (label: string) => `bench_${label}_${process.pid}_${++counter}`;
const payload = (i: number) => ({ i, total: 10 + (i % 90), sku: `sku-${i % 100}` });
const messages = (count: number): Message[] =>
  Array.from({ length: count }, (_, i) => createMessage({ type: 'Bench', key: `k-${i % 100}`, data: payload(i) }));

async function unavailable(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: 3000, reconnect: false });
    await nc.close();
    return undefined;
  } catch (error) {
    return `NATS at ${url} does not answer: ${(error as Error).message}`;
  }
}

/** A raw JetStream trial on a stream and durable consumer of its own, deleted afterwards. */
function rawTrial(kind: 'publish' | 'consume' | 'e2e'): Trial {
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const stream = unique('raw');
  const batch = messages(MESSAGES);
  const bodies = batch.map((m) => new TextEncoder().encode(messageToJson(m)));
  const publishAll = async () => {
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < bodies.length; i++) {
      pending.push(js.publish(`${stream}.orders`, bodies[i], { msgID: batch[i]?.id as string }));
      // Bounded in flight, as the Factline subject (8 batches of 100).
      if (pending.length >= 800) await Promise.all(pending.splice(0, 100));
    }
    await Promise.all(pending);
  };
  const consumeAll = async () => {
    const consumer = await js.consumers.get(stream, 'bench');
    const messagesIn = await consumer.consume({ max_messages: 256 });
    let acked = 0;
    for await (const message of messagesIn) {
      message.ack();
      if (++acked === MESSAGES) break;
    }
    // Closed after the clock stopped: its wait for the pull under way to end is not consuming.
    closeConsume = () => messagesIn.close();
  };
  let closeConsume: () => Promise<unknown> = async () => undefined;
  return {
    setup: async () => {
      nc = await connect({ servers: url });
      js = jetstream(nc);
      jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: 'file', retention: 'interest' });
      await jsm.consumers.add(stream, { durable_name: 'bench', ack_policy: 'explicit', max_ack_pending: 20_000 });
      if (kind === 'consume') await publishAll();
    },
    run: async () => {
      if (kind === 'publish') await publishAll();
      else if (kind === 'consume') await consumeAll();
      else await withCpu('raw', () => Promise.all([publishAll(), consumeAll()]));
      return MESSAGES;
    },
    teardown: async () => {
      await closeConsume().catch(() => undefined);
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}

/** A Factline trial on an application (stream) of its own, deleted afterwards. */
function factlineTrial(kind: 'publish' | 'consume' | 'e2e', paced = false): Trial {
  let transport: NatsTransport;
  let closeSubscription: () => Promise<void> = async () => undefined;
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
      if (pending.length >= 8) await pending.shift();
    }
    await Promise.all(pending);
  };
  return {
    setup: async () => {
      transport = await getNatsTransport({ url, application, partitions: 4, prefetch: 64 });
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
        // The claims are taken asynchronously: wait until this process pulls every partition.
        const deadline = Date.now() + 10_000;
        while (transport.heldPartitions('orders', 'bench').length < 4 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
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
          await Promise.all(got.map((delivery) => delivery.ack()));
          acked += got.length;
        }
        // Closed after the clock stopped (teardown): its wait for each partition's pull is not consuming.
        closeSubscription = () => subscription.close();
      } else {
        const started = performance.now();
        if (paced) await Promise.all([publishAll(), done]);
        else await withCpu('factline', () => Promise.all([publishAll(), done]));
        if (!paced) factlineRate = MESSAGES / ((performance.now() - started) / 1000);
      }
      return MESSAGES;
    },
    extras: () => {
      if (kind !== 'e2e' || !paced) return {};
      const latencies = Array.from(handledAt, (at, i) => at - (publishedAt[i] as number)).sort((a, b) => a - b);
      const at = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
      report('nats-e2e', 'factline-half.p50', at(50) * 1000, 'us');
      report('nats-e2e', 'factline-half.p99', at(99) * 1000, 'us');
      return {};
    },
    teardown: async () => {
      await closeSubscription();
      await consumer?.stop();
      await transport.close();
      close();
      const nc = await connect({ servers: url });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(application).catch(() => undefined);
        await jsm.streams.delete(`KV_${application}_claims`).catch(() => undefined);
      } finally {
        await nc.close();
      }
    },
  };
}

const subject = (name: string, make: () => Trial, repeat?: number): Subject => ({
  name,
  ...(repeat ? { repeat } : {}),
  trial: async () => (await unavailable()) ?? make(),
});

export function removeNatsFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

export const natsWorkloads: Workload[] = [
  {
    name: 'nats-publish',
    description: `${MESSAGES} ~240-byte messages published to a file-backed stream, each resolved on its PubAck; raw = js.publish with msgID (800 in flight); factline = transport.publish in batches of 100 (8 in flight) to a group of 4 partitions`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('publish')), subject('factline', () => factlineTrial('publish'))],
  },
  {
    name: 'nats-consume',
    description: `${MESSAGES} stored messages received and acked; raw = durable pull consumer consume() (256 buffered), each acked; factline = subscription.receive(64) loop, a batch acked at once, prefetch 64 per partition; the consumer closed after the clock stopped`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('consume')), subject('factline', () => factlineTrial('consume'))],
  },
  {
    name: 'nats-e2e',
    description: `${MESSAGES} messages published and handled; rate = first publish → last ack; raw = js.publish + pull consume/ack on one consumer; factline = transport.publish → createConsumer (retry policy, SQLite inbox, 8 key lanes, one INSERT per message); factline-half = the same at half the factline rate, p50/p99 = publish resolved → handled (µs)`,
    unit: 'msg/s',
    subjects: [
      subject('raw', () => rawTrial('e2e')),
      subject('factline', () => factlineTrial('e2e')),
      subject('factline-half', () => factlineTrial('e2e', true), 1),
    ],
  },
];
