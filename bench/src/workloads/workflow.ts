/**
 * Workflow workloads (`npm run bench -- workflow`), on an SQLite file:
 * - `workflow-sqlite-steps`: STEPS saga steps end to end. A step = a `Start` message published to the
 *   SQLite transport → the workflow's consumer records the input and its `send` output in one append →
 *   the workflow relay (store as outbox) publishes it → a consumer with the SQLite inbox runs the step's
 *   handler (one INSERT). Subject `factline` = steps/s from the first publish to the last handler run;
 *   subject `consumer` = the same number of messages published straight to the transport and handled by
 *   the same inbox consumer (the pipeline alone, same machine, same run).
 * - `workflow-sqlite-timer-lateness`: TIMERS pending timers due over SPREAD_MS (20 s), fired by the timer poller
 *   (`createWorkflowTimers` on the SQLite timer store); lateness = the fired input recorded − its due
 *   time, p50 and p99 in ms. Subject `factline`: the machine otherwise idle; `loaded`: while four
 *   writers append batches of 10 events to the same store as fast as they can.
 * The PostgreSQL workloads are in workflow-postgres.ts.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createConsumer,
  createMessage,
  createWorkflowHandler,
  createWorkflowTimers,
  defineWorkflow,
  defineWorkflowRelay,
  type Event,
  type EventStore,
  schedule,
  send,
  systemClock,
} from '@factline/core';
import {
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteTimerStore,
  getSqliteTransport,
  sqliteTimerProjection,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { report, type Trial, type Workload } from '../harness.ts';

export const STEPS = Number(process.env.FACTLINE_BENCH_WORKFLOW_STEPS ?? 2000);
export const TIMERS = Number(process.env.FACTLINE_BENCH_WORKFLOW_TIMERS ?? 10_000);
/** Over how long the timers fall due: 10,000 over 20 s is 500 firings/s. */
export const SPREAD_MS = Number(process.env.FACTLINE_BENCH_WORKFLOW_TIMER_SPREAD_MS ?? 20_000);
const dir = join(tmpdir(), `factline-bench-workflow-${process.pid}`);
let counter = 0;
const freshFile = () => {
  mkdirSync(dir, { recursive: true });
  return join(dir, `trial-${++counter}.db`);
};
export function removeWorkflowFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

type JobInput = Event<'Start', { id: string }> | Event<'Fire', { id: string }>;
type JobOutput = Event<'Step', { id: string }>;
export const job = defineWorkflow<null, JobInput, JobOutput>({
  name: 'job',
  inputs: ['Start', 'Fire'],
  start: ['Start'],
  correlate: (input) => input.data.id,
  initialState: () => null,
  evolve: (state) => state,
  decide: (input) => [send({ type: 'Step', data: { id: input.data.id } })],
});

/** Waits (polling, with a deadline) until `done()`. */
export async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function stepsTrial(viaWorkflow: boolean): Trial {
  const path = freshFile();
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  store.database.exec('CREATE TABLE bench_steps (id TEXT PRIMARY KEY)');
  let handled = 0;
  const handler = createWorkflowHandler(job, { store });
  const inputs = createConsumer({ name: 'job', topic: 'jobs', transport, handler: (m) => handler.handle(m) });
  const steps = createConsumer<Database>({
    name: 'steps',
    topic: 'steps',
    transport,
    inbox: getSqliteInbox({ database: store.database }),
    handler(message, db) {
      db.prepare('INSERT INTO bench_steps (id) VALUES (?)').run(message.id);
      handled++;
    },
  });
  let relay: Awaited<ReturnType<typeof startSqliteProjections>> | undefined;
  return {
    async setup() {
      await steps.start();
      if (viaWorkflow) {
        await inputs.start();
        relay = await startSqliteProjections(store, [
          defineWorkflowRelay({ name: 'job_relay', transport, topic: 'steps' }),
        ]);
      }
    },
    async run() {
      const messages = Array.from({ length: STEPS }, (_, i) =>
        viaWorkflow
          ? createMessage({ type: 'Start', data: { id: `j${i}` }, key: `j${i}` })
          : createMessage({ type: 'Step', data: { id: `j${i}` }, key: `j${i}` }),
      );
      for (let i = 0; i < messages.length; i += 500) {
        await transport.publish(viaWorkflow ? 'jobs' : 'steps', messages.slice(i, i + 500));
      }
      await until(() => handled >= STEPS, 600_000);
      return STEPS;
    },
    async teardown() {
      await relay?.stop();
      await inputs.stop();
      await steps.stop();
      await transport.close();
      await store.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    },
  };
}

type TimerInput = Event<'Set', { id: string; at: number }> | Event<'Fire', { id: string }>;
export const timed = defineWorkflow<null, TimerInput>({
  name: 'timed',
  inputs: ['Set', 'Fire'],
  start: ['Set'],
  correlate: (input) => input.data.id,
  initialState: () => null,
  evolve: (state) => state,
  decide: (input) =>
    input.type === 'Set'
      ? schedule({ token: 't', at: new Date(input.data.at), message: { type: 'Fire', data: { id: input.data.id } } })
      : [],
});

function latencyTrial(loaded: boolean): Trial {
  const path = freshFile();
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  const timers = getSqliteTimerStore({ database: store.database });
  const handler = createWorkflowHandler(timed, { store });
  const far = Date.now() + 3_600_000;
  const lateness: number[] = [];
  let shift = 0;
  let appended = 0;
  const clock = { now: () => Date.now() + shift, setTimer: systemClock.setTimer };
  const measuring: typeof handler = {
    ...handler,
    fireTimer: async (timer) => {
      const outcome = await handler.fireTimer(timer);
      lateness.push(clock.now() - timer.dueAt);
      return outcome;
    },
    fireTimers: async (due) => {
      const firings = await handler.fireTimers(due);
      const at = clock.now();
      for (const { timer } of firings) lateness.push(at - timer.dueAt);
      return firings;
    },
  };
  const poller = createWorkflowTimers({
    timers,
    handlers: [measuring],
    clock,
    pollMs: 10,
    batchSize: 500,
  });
  return {
    async setup() {
      for (let i = 0; i < TIMERS; i += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, TIMERS - i) }, (_, j) =>
            handler.handle(
              createMessage({ type: 'Set', data: { id: `t${i + j}`, at: far + ((i + j) * SPREAD_MS) / TIMERS } }),
            ),
          ),
        );
      }
    },
    async run() {
      const load = loaded ? startLoad(store) : undefined;
      shift = far - Date.now() - 500; // the first timer falls due half a second from now
      await poller.start();
      try {
        await until(() => lateness.length >= TIMERS, 600_000);
      } finally {
        await poller.stop();
        appended = (await load?.stop()) ?? 0;
      }
      reportLateness('workflow-sqlite-timer-lateness', loaded ? 'loaded' : 'factline', lateness);
      return TIMERS;
    },
    extras: (): Record<string, number> =>
      loaded ? { 'load events/s': Math.round(appended / ((SPREAD_MS + 500) / 1000)) } : {},
    async teardown() {
      await store.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    },
  };
}

/** Appends batches of 10 events from `writers` loops until stopped; returns what stops them and the count. */
export function startLoad(store: EventStore, writers = 4): { stop(): Promise<number> } {
  let running = true;
  let appended = 0;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let n = 0; running; n++) {
      const events = Array.from({ length: 10 }, (_, i) => ({ type: 'Load', data: { w, n, i, pad: 'x'.repeat(200) } }));
      await store.append(`load-${w}-${n}`, events);
      appended += events.length;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return appended;
    },
  };
}

/** p50 and p99 of `values`, reported under `workload` as `<subject>.p50` and `<subject>.p99` (ms). */
export function reportLateness(workload: string, subject: string, values: readonly number[]): void {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  report(workload, `${subject}.p50`, at(50), 'ms');
  report(workload, `${subject}.p99`, at(99), 'ms');
}

export const workflowWorkloads: Workload[] = [
  {
    name: 'workflow-sqlite-steps',
    description: `${STEPS} saga steps end to end on SQLite (input recorded + output relayed + handler run), beside the consumer pipeline alone`,
    unit: 'steps/s',
    repeat: 3,
    subjects: [
      { name: 'factline', trial: () => stepsTrial(true) },
      { name: 'consumer', trial: () => stepsTrial(false) },
    ],
  },
  {
    name: 'workflow-sqlite-timer-lateness',
    description: `${TIMERS} pending timers due over ${SPREAD_MS / 1000} s on SQLite; lateness p50/p99 (ms) past due, idle and under append load`,
    unit: 'timers/s',
    repeat: 1,
    subjects: [
      { name: 'factline', trial: () => latencyTrial(false) },
      { name: 'loaded', trial: () => latencyTrial(true) },
    ],
  },
];
