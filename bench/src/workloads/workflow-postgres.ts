/**
 * Workflow workloads on PostgreSQL (`npm run bench -- workflow`), beside the SQLite ones in workflow.ts.
 * Server: FACTLINE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); when it does not
 * answer, every subject is skipped with the reason. Every trial works in a fresh schema, dropped after.
 * - `workflow-postgres-steps`: STEPS saga steps end to end. A step = a `Start` message published to the
 *   PostgreSQL transport → the workflow's consumer records the input and its `send` output in one
 *   append → the workflow relay (store as outbox, under its projection lease) publishes it → a consumer
 *   with the PostgreSQL inbox runs the step's handler (one INSERT). Subject `factline` = steps/s from
 *   the first publish to the last handler run; subject `consumer` = the same number of messages
 *   published straight to the transport and handled by the same inbox consumer (the pipeline alone).
 * - `workflow-postgres-timer-lateness`: TIMERS pending timers due over SPREAD_MS, fired by the timer
 *   poller on the PostgreSQL timer store; lateness = the fired input recorded − its due time, p50 and
 *   p99 in ms. Subject `factline`: the machine otherwise idle; `loaded`: while four writers append
 *   batches of 10 events to the same store as fast as they can.
 */
import {
  createConsumer,
  createMessage,
  createWorkflowHandler,
  createWorkflowTimers,
  defineWorkflowRelay,
  systemClock,
} from '@factline/core';
import type pg from 'pg';
import type { Trial, Workload } from '../harness.ts';
import { dropSchema, freshSchema, loadFactlinePostgres, pgUnavailable, pgUrl } from './postgres.ts';
import { job, reportLateness, SPREAD_MS, STEPS, startLoad, TIMERS, timed, until } from './workflow.ts';

async function stepsTrial(viaWorkflow: boolean): Promise<Trial | string> {
  const unavailable = await pgUnavailable();
  if (unavailable) return unavailable;
  const factline = await loadFactlinePostgres();
  if (typeof factline === 'string') return factline;
  const schema = freshSchema('workflow_steps');
  const store = await factline.getPostgresEventStore({
    connectionString: pgUrl,
    schema,
    poolSize: 6,
    inlineProjections: [factline.postgresTimerProjection({ schema })],
  });
  const transport = await factline.getPostgresTransport({
    connectionString: pgUrl,
    schema,
    poolSize: 6,
    pollIntervalMs: 20,
  });
  await store.pool.query(`CREATE TABLE ${schema}.bench_steps (id text PRIMARY KEY)`);
  let handled = 0;
  const handler = createWorkflowHandler(job, { store });
  const inputs = createConsumer({ name: 'job', topic: 'jobs', transport, handler: (m) => handler.handle(m) });
  const steps = createConsumer<pg.PoolClient>({
    name: 'steps',
    topic: 'steps',
    transport,
    inbox: await factline.getPostgresInbox({ pool: transport.pool, schema }),
    async handler(message, client) {
      await client.query(`INSERT INTO ${schema}.bench_steps (id) VALUES ($1)`, [message.id]);
      handled++;
    },
  });
  let relay: Awaited<ReturnType<typeof factline.startPostgresProjections>> | undefined;
  return {
    async setup() {
      await steps.start();
      if (viaWorkflow) {
        await inputs.start();
        relay = await factline.startPostgresProjections(store, [
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
      await dropSchema(schema);
    },
  };
}

async function latenessTrial(loaded: boolean): Promise<Trial | string> {
  const unavailable = await pgUnavailable();
  if (unavailable) return unavailable;
  const factline = await loadFactlinePostgres();
  if (typeof factline === 'string') return factline;
  const schema = freshSchema('workflow_timers');
  const store = await factline.getPostgresEventStore({
    connectionString: pgUrl,
    schema,
    poolSize: 12,
    inlineProjections: [factline.postgresTimerProjection({ schema })],
  });
  const timers = await factline.getPostgresTimerStore({ pool: store.pool, schema });
  // Where the time goes: each instance's read and append as the handler makes them, and each batch.
  const spent = { read: [] as number[], append: [] as number[], batch: [] as number[], size: [] as number[] };
  let timing = false;
  const timed2 =
    <A extends unknown[], R>(into: number[], call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      try {
        return await call(...args);
      } finally {
        if (timing) into.push(performance.now() - started);
      }
    };
  const timedStore: typeof store = Object.create(store, {
    readStream: { value: timed2(spent.read, store.readStream.bind(store)) },
    append: { value: timed2(spent.append, store.append.bind(store)) },
  });
  const handler = createWorkflowHandler(timed, { store: timedStore });
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
      const started = performance.now();
      const firings = await handler.fireTimers(due);
      spent.batch.push(performance.now() - started);
      spent.size.push(due.length);
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
      timing = true;
      await poller.start();
      try {
        await until(() => lateness.length >= TIMERS, 600_000);
      } finally {
        await poller.stop();
        appended = (await load?.stop()) ?? 0;
      }
      reportLateness('workflow-postgres-timer-lateness', loaded ? 'loaded' : 'factline', lateness);
      return TIMERS;
    },
    extras: (): Record<string, number> => ({
      ...(loaded ? { 'load events/s': Math.round(appended / ((SPREAD_MS + 500) / 1000)) } : {}),
      'read p50 ms': percentile(spent.read, 50),
      'read p99 ms': percentile(spent.read, 99),
      'append p50 ms': percentile(spent.append, 50),
      'append p99 ms': percentile(spent.append, 99),
      'batch p50 ms': percentile(spent.batch, 50),
      'batch p99 ms': percentile(spent.batch, 99),
      'timers per batch p50': percentile(spent.size, 50),
      'timers per batch p99': percentile(spent.size, 99),
    }),
    async teardown() {
      await timers.close();
      await store.close();
      await dropSchema(schema);
    },
  };
}

export const workflowPostgresWorkloads: Workload[] = [
  {
    name: 'workflow-postgres-steps',
    description: `${STEPS} saga steps end to end on PostgreSQL (input recorded + output relayed + handler run), beside the consumer pipeline alone`,
    unit: 'steps/s',
    repeat: 3,
    subjects: [
      { name: 'factline', trial: () => stepsTrial(true) },
      { name: 'consumer', trial: () => stepsTrial(false) },
    ],
  },
  {
    name: 'workflow-postgres-timer-lateness',
    description: `${TIMERS} pending timers due over ${SPREAD_MS / 1000} s on PostgreSQL; lateness p50/p99 (ms) past due, idle and under append load`,
    unit: 'timers/s',
    repeat: 1,
    subjects: [
      { name: 'factline', trial: () => latenessTrial(false) },
      { name: 'loaded', trial: () => latenessTrial(true) },
    ],
  },
];

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const value = sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  return Math.round(value * 10) / 10;
}
