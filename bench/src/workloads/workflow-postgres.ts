/**
 * Workflow workloads on PostgreSQL (`npm run bench -- workflow`), beside the SQLite ones in workflow.ts
 * (the trials: workflow-trials.ts).
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
import type pg from 'pg';
import { percentile, type Trial, type Workload } from '../harness.ts';
import { dropSchema, freshSchema, loadFactlinePostgres, pgUnavailable, pgUrl } from './postgres.ts';
import { latenessTrial, SPREAD_MS, STEPS, stepsTrial, TIMERS } from './workflow-trials.ts';

async function postgresStepsTrial(viaWorkflow: boolean): Promise<Trial | string> {
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
  return stepsTrial<pg.PoolClient>(viaWorkflow, {
    store,
    transport,
    inbox: await factline.getPostgresInbox({ pool: transport.pool, schema }),
    record: (message, client) => client.query(`INSERT INTO ${schema}.bench_steps (id) VALUES ($1)`, [message.id]),
    startRelay: (relay) => factline.startPostgresProjections(store, [relay]),
    remove: () => dropSchema(schema),
  });
}

async function postgresLatenessTrial(loaded: boolean): Promise<Trial | string> {
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
  return latenessTrial({
    workload: 'workflow-postgres-timer-lateness',
    loaded,
    store,
    handlerStore: timedStore,
    timers,
    onStart: () => {
      timing = true;
    },
    onBatch: (ms, size) => {
      spent.batch.push(ms);
      spent.size.push(size);
    },
    extras: () => ({
      'read p50 ms': tenths(spent.read, 50),
      'read p99 ms': tenths(spent.read, 99),
      'append p50 ms': tenths(spent.append, 50),
      'append p99 ms': tenths(spent.append, 99),
      'batch p50 ms': tenths(spent.batch, 50),
      'batch p99 ms': tenths(spent.batch, 99),
      'timers per batch p50': tenths(spent.size, 50),
      'timers per batch p99': tenths(spent.size, 99),
    }),
    close: async () => {
      await timers.close();
      await store.close();
      await dropSchema(schema);
    },
  });
}

export const workflowPostgresWorkloads: Workload[] = [
  {
    name: 'workflow-postgres-steps',
    description: `${STEPS} saga steps end to end on PostgreSQL (input recorded + output relayed + handler run), beside the consumer pipeline alone`,
    unit: 'steps/s',
    repeat: 3,
    subjects: [
      { name: 'factline', trial: () => postgresStepsTrial(true) },
      { name: 'consumer', trial: () => postgresStepsTrial(false) },
    ],
  },
  {
    name: 'workflow-postgres-timer-lateness',
    description: `${TIMERS} pending timers due over ${SPREAD_MS / 1000} s on PostgreSQL; lateness p50/p99 (ms) past due, idle and under append load`,
    unit: 'timers/s',
    repeat: 1,
    subjects: [
      { name: 'factline', trial: () => postgresLatenessTrial(false) },
      { name: 'loaded', trial: () => postgresLatenessTrial(true) },
    ],
  },
];

/** The value at percentile `p` of `values`, rounded to a tenth. */
function tenths(values: readonly number[], p: number): number {
  return (
    Math.round(
      percentile(
        [...values].sort((a, b) => a - b),
        p,
      ) * 10,
    ) / 10
  );
}
