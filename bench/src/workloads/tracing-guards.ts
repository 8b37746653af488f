/**
 * What Factline's instrumentation costs with `@opentelemetry/api` installed and no SDK registered
 * (`npm run bench -- tracing-guards`), measured where the noise of a shared machine cannot hide it:
 * in one process, the instrumented call and the bare call are timed alternately in tight loops
 * (ROUNDS rounds of CALLS calls each, the median round kept), so the difference is the exact code
 * the instrumentation adds per unit:
 * - append: `instrumentEventStore` around a store whose `append` resolves at once;
 * - message: the consumer's per-delivery calls (`traceProcess`, `noteAttempt`, `noteSettle`)
 *   around a unit of work that resolves at once.
 * The same trial then measures the real units (CPU time of single-event appends to a SQLite file
 * and of messages through the in-memory consumer pipeline), and reports the added cost as a share
 * of each: goal ≤ 2%.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AppendResult,
  type Consumer,
  createConsumer,
  createMessage,
  type EventStore,
  getInMemoryTransport,
} from '@factline/core';
import { instrumentEventStore } from '@factline/core/adapter';
import { getSqliteEventStore } from '@factline/sqlite';
import { packageModule } from '../code-under-test.ts';
import type { Workload } from '../harness.ts';
import { orderData } from './payload.ts';

// Core's internals, from the code the bench measures (code-under-test.ts).
const { noteAttempt, noteSettle, traceProcess } = (await import(
  packageModule('core', 'tracing/messaging-spans')
)) as typeof import('../../../packages/core/src/tracing/messaging-spans.ts');
const { otel, tracingOn } = (await import(
  packageModule('core', 'tracing/otel')
)) as typeof import('../../../packages/core/src/tracing/otel.ts');

const CALLS = 200_000;
const ROUNDS = 9;
const APPENDS = 3_000;
const MESSAGES = 20_000;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** ns per call of `call`, CALLS times in a row (awaited one by one, as the runtimes do). */
async function nsPerCall(call: () => Promise<unknown>): Promise<number> {
  const began = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await call();
  return Number(process.hrtime.bigint() - began) / CALLS;
}

/** Median ns per call of `bare` and `instrumented`, timed in alternating rounds. */
async function alternate(bare: () => Promise<unknown>, instrumented: () => Promise<unknown>) {
  const bareRounds: number[] = [];
  const instrumentedRounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bareRounds.push(await nsPerCall(bare));
    instrumentedRounds.push(await nsPerCall(instrumented));
  }
  const bareNs = median(bareRounds);
  const instrumentedNs = median(instrumentedRounds);
  return { bareNs, instrumentedNs, addedNs: Math.max(0, instrumentedNs - bareNs) };
}

/** CPU µs per single-event append to a SQLite file (store defaults but `synchronous: 'normal'`). */
async function appendCpuUs(): Promise<number> {
  const dir = join(tmpdir(), 'factline-bench-tracing-guards');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `append-${process.pid}.db`);
  const store = getSqliteEventStore({ path, synchronous: 'normal' });
  try {
    for (let i = 0; i < 500; i++) await store.append(`order-${i % 100}`, [{ type: 'OrderPlaced', data: orderData(i) }]);
    const began = process.cpuUsage();
    for (let i = 0; i < APPENDS; i++) {
      await store.append(`order-${i % 100}`, [{ type: 'OrderPlaced', data: orderData(i) }]);
    }
    const used = process.cpuUsage(began);
    return (used.user + used.system) / APPENDS;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU µs per message drained by a consumer on the in-memory transport with a no-op handler. */
async function messageCpuUs(): Promise<number> {
  const transport = getInMemoryTransport();
  let handled = 0;
  let allHandled: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  const consumer: Consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    concurrency: 8,
    pollMs: 50,
    handler: () => {
      if (++handled === MESSAGES) allHandled();
    },
  });
  try {
    await transport.declareSubscription('orders', 'billing');
    const messages = Array.from({ length: MESSAGES }, (_, i) =>
      createMessage({ type: 'OrderPlaced', data: orderData(i), key: `order-${i % 100}` }),
    );
    for (let i = 0; i < messages.length; i += 500) await transport.publish('orders', messages.slice(i, i + 500));
    const began = process.cpuUsage();
    await consumer.start();
    await done;
    const used = process.cpuUsage(began);
    return (used.user + used.system) / MESSAGES;
  } finally {
    await consumer.stop();
    await transport.close();
  }
}

export const tracingGuardWorkloads: Workload[] = [
  {
    name: 'tracing-guards',
    description:
      'the code Factline adds per append and per consumed message with @opentelemetry/api installed and no SDK ' +
      `(instrumented vs bare calls alternating in one process, ${ROUNDS} rounds of ${CALLS}), as a share of a ` +
      'SQLite append and of an in-memory pipeline message measured in the same trial; goal ≤ 2%',
    unit: 'instrumented appends/s',
    repeat: 3,
    subjects: [
      {
        name: 'no-sdk',
        isolate: true,
        trial: () => {
          let figures: Record<string, number> = {};
          return {
            run: async () => {
              if (otel === undefined) throw new Error('no-sdk: @opentelemetry/api is not installed');
              if (tracingOn()) throw new Error('no-sdk: a tracer provider is registered');
              const result: AppendResult = { version: 1, position: 1 } as AppendResult;
              const bareStore = { append: async () => result } as unknown as EventStore;
              const plainAppend = bareStore.append;
              const instrumented = instrumentEventStore({ ...bareStore }, 'bench');
              const events = [{ type: 'OrderPlaced', data: orderData(1) }];
              const append = await alternate(
                () => plainAppend('order-1', events),
                () => instrumented.append('order-1', events),
              );
              const message = createMessage({ type: 'OrderPlaced', data: orderData(1), key: 'order-1' });
              const settings = { system: 'factline', topic: 'orders', group: 'billing', producerSpan: 'link' } as const;
              const work = async () => undefined;
              const process = await alternate(work, () =>
                traceProcess(settings, message, 1, async () => {
                  noteAttempt(1);
                  await work();
                  noteSettle('ack');
                }),
              );
              const appendUs = await appendCpuUs();
              const messageUs = await messageCpuUs();
              figures = {
                appendAddedNs: append.addedNs,
                messageAddedNs: process.addedNs,
                sqliteAppendCpuUs: appendUs,
                pipelineMessageCpuUs: messageUs,
                appendCostPct: (100 * append.addedNs) / (appendUs * 1000),
                messageCostPct: (100 * process.addedNs) / (messageUs * 1000),
              };
              return { units: CALLS, seconds: (append.instrumentedNs * CALLS) / 1e9 };
            },
            extras: () => figures,
          };
        },
      },
    ],
  },
];
