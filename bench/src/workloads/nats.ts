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
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageToJson } from '@factline/core/adapter';
import { getNatsTransport, type NatsTransport } from '@factline/nats';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Database } from 'better-sqlite3';
import type { Trial, Workload } from '../harness.ts';
import {
  benchMessages,
  sqliteEndToEnd,
  subjectsUnless,
  transportTrial,
  uniqueName,
  withCpu,
} from './transport-trials.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_NATS_MESSAGES ?? 5000);
const url = process.env.FACTLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
const dir = join(tmpdir(), `factline-bench-nats-${process.pid}`);

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
  const stream = uniqueName('raw');
  const batch = benchMessages(MESSAGES);
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
      else await withCpu('nats-e2e', 'raw', MESSAGES, () => Promise.all([publishAll(), consumeAll()]));
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
  const application = uniqueName('factline');
  return transportTrial<NatsTransport, Database>({
    workload: 'nats-e2e',
    kind,
    paced,
    messages: MESSAGES,
    open: (partitions) => getNatsTransport({ url, application, partitions, prefetch: 64 }),
    endToEnd: () => ({
      ...sqliteEndToEnd(dir, application),
      measure: (work) => withCpu('nats-e2e', 'factline', MESSAGES, work),
    }),
    // The claims are taken asynchronously: the clock starts once this process pulls every partition.
    held: (transport, topic, group) => transport.heldPartitions(topic, group),
    closeAfterClock: true,
    removeLeftovers: async () => {
      const nc = await connect({ servers: url });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(application).catch(() => undefined);
        await jsm.streams.delete(`KV_${application}_claims`).catch(() => undefined);
        await jsm.streams.delete(`KV_${application}_partitions`).catch(() => undefined);
      } finally {
        await nc.close();
      }
    },
  });
}

const subject = subjectsUnless(unavailable);

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
