/**
 * What the broker workloads (rabbitmq.ts, nats.ts, redis.ts) share: their messages and names, subjects
 * skipped when the broker does not answer, the CPU per message of a trial, and the Factline trial of
 * `<broker>-publish`, `-consume` and `-e2e` on topic `orders`, group `bench`, 4 partitions:
 * - publish: `transport.publish` in batches of 100, 8 in flight;
 * - consume: the messages published in setup, a subscription's `receive(64)` loop acking them;
 * - e2e: publish → `createConsumer` (retry policy: 3 retries, 100 ms then 1 s; the broker's inbox and
 *   lanes); rate = first publish → last message handled. A paced trial runs at half the last unpaced rate
 *   of its workload and reports `factline-half.p50` / `.p99`: publish resolved → handled (µs).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Consumer,
  createConsumer,
  createMessage,
  type DeadLetterStore,
  type Inbox,
  type Message,
  type Transport,
} from '@factline/core';
import { getSqliteDeadLetterStore, getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { percentile, report, type Subject, type Trial } from '../harness.ts';

const topic = 'orders';
const group = 'bench';
const partitions = 4;
let counter = 0;
/** The last unpaced end-to-end rate (messages/s) of each workload: its paced trial runs at half of it. */
const rates = new Map<string, number>();

/** A name no other trial of this process uses: `bench_<label>_<pid>_<n>`. */
export const uniqueName = (label: string): string => `bench_${label}_${process.pid}_${++counter}`;

/** The body of message `i`: `i` tells the end-to-end handler which message it handles. */
export const benchPayload = (i: number) => ({ i, total: 10 + (i % 90), sku: `sku-${i % 100}` });

/** `count` messages over 100 keys, the same for every subject. */
export const benchMessages = (count: number): Message[] =>
  Array.from({ length: count }, (_, i) => createMessage({ type: 'Bench', key: `k-${i % 100}`, data: benchPayload(i) }));

/** A maker of subjects whose trials are skipped with the reason `unavailable` gives, when it gives one. */
export const subjectsUnless =
  (unavailable: () => Promise<string | undefined>) =>
  (name: string, make: () => Trial, repeat?: number): Subject => ({
    name,
    ...(repeat ? { repeat } : {}),
    trial: async () => (await unavailable()) ?? make(),
  });

/** A server whose CPU time a trial reports beside this process's (`<subject>.<name>-cpu`). */
export interface CpuServer {
  name: string;
  /** The server's CPU time so far (user + sys), µs. */
  cpu(): Promise<number>;
}

/**
 * Runs `work` and reports this process's CPU (user + sys) per message as `<subject>.node-cpu` under
 * `workload` (µs/msg), and `server`'s as `<subject>.<server>-cpu` when given.
 */
export async function withCpu(
  workload: string,
  subject: string,
  messages: number,
  work: () => Promise<unknown>,
  server?: CpuServer,
): Promise<void> {
  const serverBefore = await server?.cpu();
  const own = process.cpuUsage();
  await work();
  const used = process.cpuUsage(own);
  const serverUsed = server ? (await server.cpu()) - (serverBefore as number) : 0;
  report(workload, `${subject}.node-cpu`, (used.user + used.system) / messages, 'us/msg');
  if (server) report(workload, `${subject}.${server.name}-cpu`, serverUsed / messages, 'us/msg');
}

/** What a broker gives the end-to-end consumer. */
export interface EndToEndParts<Tx> {
  inbox: Inbox<Tx>;
  deadLetters?: DeadLetterStore;
  /** Key lanes (`concurrency`). */
  lanes: number;
  /** The handler's work on a message before it counts as handled. */
  effect?: (message: Message) => void;
  /** Runs the unpaced end-to-end run, measuring it (e.g. `withCpu`). */
  measure?: (work: () => Promise<unknown>) => Promise<void>;
  /** Releases what the parts hold; called after the transport closed. */
  close?: () => Promise<void> | void;
}

/**
 * The end-to-end consumer of the RabbitMQ and NATS workloads: the SQLite inbox and dead letters in a file
 * of its own in `dir`, 8 lanes, one INSERT per message in the inbox's transaction.
 */
export function sqliteEndToEnd(dir: string, application: string): EndToEndParts<Database> {
  mkdirSync(dir, { recursive: true });
  const db = openSqliteDatabase(join(dir, `${application}.db`));
  db.exec('CREATE TABLE bench_items (id TEXT PRIMARY KEY, total REAL NOT NULL)');
  const insert = db.prepare('INSERT INTO bench_items (id, total) VALUES (?, ?)');
  return {
    inbox: getSqliteInbox({ database: db }),
    deadLetters: getSqliteDeadLetterStore({ database: db }),
    lanes: 8,
    effect: (message) => insert.run(message.id, (message.data as { total: number }).total),
    close: () => {
      db.close();
    },
  };
}

export interface TransportTrialOptions<T extends Transport, Tx> {
  /** The end-to-end workload (`nats-e2e`): the key of its rate and where the paced figures go. */
  workload: string;
  kind: 'publish' | 'consume' | 'e2e';
  /** e2e only: at half the workload's last unpaced rate, reporting latency percentiles. */
  paced?: boolean;
  /** e2e, unpaced: whether this subject's rate is the one a paced trial halves (default true). */
  setsPace?: boolean;
  messages: number;
  /** Opens the trial's transport (on an application of its own). */
  open: (partitions: number) => Promise<T>;
  /** The end-to-end consumer's parts, made in setup. */
  endToEnd?: (transport: T) => Promise<EndToEndParts<Tx>> | EndToEndParts<Tx>;
  /** The partitions this process reads, for a transport that claims them: the clock starts once it holds all. */
  held?: (transport: T, topic: string, group: string) => readonly number[];
  /** consume: acks a batch's deliveries one after the other rather than all at once. */
  ackInTurn?: boolean;
  /** consume: closes the subscription in teardown, after the clock stopped (its pending pulls are not consuming). */
  closeAfterClock?: boolean;
  /** Removes what the trial left on the broker, once the transport closed. */
  removeLeftovers: (transport: T) => Promise<void>;
}

/** The Factline trial of a broker workload (see the module's comment). */
export function transportTrial<T extends Transport, Tx = undefined>(options: TransportTrialOptions<T, Tx>): Trial {
  const { workload, kind, paced = false, messages: count } = options;
  let transport: T;
  let consumer: Consumer | undefined;
  let parts: EndToEndParts<Tx> | undefined;
  let closeSubscription: () => Promise<void> = async () => undefined;
  const batch = benchMessages(count);
  const publishedAt = new Float64Array(count);
  const handledAt = new Float64Array(count);
  let handled = 0;
  let allHandled: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  const publishAll = async () => {
    const size = 100;
    const pending: Promise<void>[] = [];
    const started = performance.now();
    const rate = rates.get(workload) ?? 0;
    for (let i = 0; i < batch.length; i += size) {
      if (paced) {
        const wait = started + (i * 1000) / (rate / 2) - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const from = i;
      pending.push(
        transport.publish(topic, batch.slice(i, i + size)).then(() => {
          const at = performance.now();
          for (let j = from; j < Math.min(from + size, batch.length); j++) publishedAt[j] = at;
        }),
      );
      // Pipelined, with a bounded number of batches in flight.
      if (pending.length >= 8) await pending.shift();
    }
    await Promise.all(pending);
  };
  const consumeAll = async () => {
    const subscription = transport.subscribe(topic, group);
    const signal = new AbortController().signal;
    let acked = 0;
    while (acked < count) {
      const got = await subscription.receive(64, 1000, signal);
      if (options.ackInTurn) for (const delivery of got) await delivery.ack();
      else await Promise.all(got.map((delivery) => delivery.ack()));
      acked += got.length;
    }
    if (options.closeAfterClock) closeSubscription = () => subscription.close();
    else await subscription.close();
  };
  const startConsumer = async () => {
    if (!options.endToEnd) throw new Error(`${workload}: an end-to-end trial needs its consumer's parts`);
    parts = await options.endToEnd(transport);
    const { effect } = parts;
    consumer = createConsumer<Tx>({
      name: group,
      topic,
      transport,
      inbox: parts.inbox,
      ...(parts.deadLetters ? { deadLetters: parts.deadLetters } : {}),
      maxRetries: 3,
      retryDelay: [100, 1000],
      concurrency: parts.lanes,
      handler(message) {
        effect?.(message);
        handledAt[(message.data as { i: number }).i] = performance.now();
        if (++handled === count) allHandled();
      },
    });
    await consumer.start();
    const { held } = options;
    if (!held) return;
    // The run starts once the consumer reads every partition: taking the claims is start-up, not throughput.
    const deadline = Date.now() + 10_000;
    while (held(transport, topic, group).length < partitions) {
      if (Date.now() > deadline) throw new Error(`the consumer did not take the ${partitions} partitions within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  return {
    setup: async () => {
      transport = await options.open(partitions);
      await transport.declareSubscription(topic, group);
      if (kind === 'consume') await publishAll();
      if (kind === 'e2e') await startConsumer();
    },
    run: async () => {
      if (kind === 'publish') await publishAll();
      else if (kind === 'consume') await consumeAll();
      else {
        const started = performance.now();
        const all = () => Promise.all([publishAll(), done]);
        if (paced || !parts?.measure) await all();
        else await parts.measure(all);
        if (!paced && options.setsPace !== false) rates.set(workload, count / ((performance.now() - started) / 1000));
      }
      return count;
    },
    extras: () => {
      if (kind !== 'e2e' || !paced) return {};
      const latencies = Array.from(handledAt, (at, i) => at - (publishedAt[i] as number)).sort((a, b) => a - b);
      report(workload, 'factline-half.p50', percentile(latencies, 50) * 1000, 'us');
      report(workload, 'factline-half.p99', percentile(latencies, 99) * 1000, 'us');
      return {};
    },
    teardown: async () => {
      await closeSubscription();
      await consumer?.stop();
      await transport.close();
      await parts?.close?.();
      await options.removeLeftovers(transport);
    },
  };
}
