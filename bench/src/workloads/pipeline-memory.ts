/**
 * The consumer pipeline's own cost (`npm run bench -- consumer-pipeline-memory`): MESSAGES messages
 * (~200-byte bodies over 100 keys) published to the in-memory transport before the clock starts,
 * then drained; rate = messages/s from start to the last one handled, and each trial reports the
 * CPU time of this process per message (`<subject>.cpu`, ns/msg: user + system over the drain).
 * - `bare`: a subscription's `receive(256)` loop acking each delivery, no consumer: the transport's share.
 * - `lanes-8`: `createConsumer` with 8 key lanes, no inbox, the default retry policy, a no-op handler.
 * - `inbox-64`: `createConsumer` with the in-memory inbox, a retry policy (3 retries, delays
 *   100/1000 ms, never taken) and 64 key lanes, a no-op handler.
 * The pipeline's own cost per message is a consumer subject's CPU less `bare`'s.
 */
import { createConsumer, createMessage, getInMemoryInbox, getInMemoryTransport, type Message } from '@factline/core';
import { report, type Subject, type Trial, type Workload } from '../harness.ts';
import { orderData } from './payload.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_PIPELINE_MEMORY_MESSAGES ?? 50_000);
const NAME = 'consumer-pipeline-memory';
const TOPIC = 'orders';
const GROUP = 'billing';
/** Deadline of one drain: far beyond any rate the pipeline runs at, so only a hang trips it. */
const DRAIN_DEADLINE_MS = 120_000;

const messages = (): Message[] =>
  Array.from({ length: MESSAGES }, (_, i) =>
    createMessage({ type: 'OrderPlaced', data: orderData(i), key: `order-${i % 100}` }),
  );

/** Rejects after `ms` unless `work` settled first. */
const withDeadline = async (work: Promise<void>, ms: number, what: string): Promise<void> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
};

/** Times `drain` (MESSAGES messages) and reports this process's CPU per message. */
async function measured(subject: string, drain: () => Promise<void>) {
  const cpu = process.cpuUsage();
  const began = performance.now();
  await withDeadline(drain(), DRAIN_DEADLINE_MS, `${subject}: draining ${MESSAGES} messages`);
  const seconds = (performance.now() - began) / 1000;
  const used = process.cpuUsage(cpu);
  report(NAME, `${subject}.cpu`, ((used.user + used.system) * 1000) / MESSAGES, 'ns/msg');
  return { units: MESSAGES, seconds };
}

function bareTrial(): Trial {
  const transport = getInMemoryTransport();
  return {
    setup: async () => {
      await transport.declareSubscription(TOPIC, GROUP);
      await transport.publish(TOPIC, messages());
    },
    run: () =>
      measured('bare', async () => {
        const subscription = transport.subscribe(TOPIC, GROUP);
        const signal = new AbortController().signal;
        let acked = 0;
        while (acked < MESSAGES) {
          for (const delivery of await subscription.receive(256, 50, signal)) {
            await delivery.ack();
            acked += 1;
          }
        }
        await subscription.close();
      }),
    teardown: () => transport.close(),
  };
}

function consumerTrial(subject: string, lanes: number, withInbox: boolean): Trial {
  const transport = getInMemoryTransport();
  let handled = 0;
  let allHandled: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  const consumer = createConsumer({
    name: GROUP,
    topic: TOPIC,
    transport,
    concurrency: lanes,
    pollMs: 50,
    ...(withInbox ? { inbox: getInMemoryInbox(), maxRetries: 3, retryDelay: [100, 1000] } : {}),
    handler: () => {
      if (++handled === MESSAGES) allHandled();
    },
  });
  return {
    setup: async () => {
      await transport.declareSubscription(TOPIC, GROUP);
      await transport.publish(TOPIC, messages());
    },
    run: () =>
      measured(subject, async () => {
        await consumer.start();
        await done;
      }),
    teardown: async () => {
      await consumer.stop();
      await transport.close();
    },
  };
}

const subjects: Subject[] = [
  { name: 'bare', trial: bareTrial },
  { name: 'lanes-8', trial: () => consumerTrial('lanes-8', 8, false) },
  { name: 'inbox-64', trial: () => consumerTrial('inbox-64', 64, true) },
];

export const pipelineMemoryWorkloads: Workload[] = [
  {
    name: NAME,
    warmup: true,
    repeat: 5,
    description: `${MESSAGES} messages over 100 keys drained from the in-memory transport; bare = receive(256) + ack, no consumer; lanes-8 = createConsumer, 8 lanes, no inbox; inbox-64 = createConsumer, in-memory inbox, retry policy, 64 lanes; <subject>.cpu = this process's CPU ns per message, per trial`,
    unit: 'msg/s',
    subjects,
  },
];
