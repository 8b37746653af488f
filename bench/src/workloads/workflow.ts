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
 * The trials are workflow-trials.ts; the PostgreSQL workloads are in workflow-postgres.ts.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteTimerStore,
  getSqliteTransport,
  sqliteTimerProjection,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import type { Trial, Workload } from '../harness.ts';
import { latenessTrial, SPREAD_MS, STEPS, stepsTrial, TIMERS } from './workflow-trials.ts';

const dir = join(tmpdir(), `factline-bench-workflow-${process.pid}`);
let counter = 0;
const freshFile = () => {
  mkdirSync(dir, { recursive: true });
  return join(dir, `trial-${++counter}.db`);
};
const removeFile = (path: string) => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
};
export function removeWorkflowFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

function sqliteStepsTrial(viaWorkflow: boolean): Trial {
  const path = freshFile();
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  store.database.exec('CREATE TABLE bench_steps (id TEXT PRIMARY KEY)');
  return stepsTrial<Database>(viaWorkflow, {
    store,
    transport,
    inbox: getSqliteInbox({ database: store.database }),
    record: (message, db) => db.prepare('INSERT INTO bench_steps (id) VALUES (?)').run(message.id),
    startRelay: (relay) => startSqliteProjections(store, [relay]),
    remove: () => removeFile(path),
  });
}

function sqliteLatenessTrial(loaded: boolean): Trial {
  const path = freshFile();
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  return latenessTrial({
    workload: 'workflow-sqlite-timer-lateness',
    loaded,
    store,
    timers: getSqliteTimerStore({ database: store.database }),
    close: async () => {
      await store.close();
      removeFile(path);
    },
  });
}

export const workflowWorkloads: Workload[] = [
  {
    name: 'workflow-sqlite-steps',
    description: `${STEPS} saga steps end to end on SQLite (input recorded + output relayed + handler run), beside the consumer pipeline alone`,
    unit: 'steps/s',
    repeat: 3,
    subjects: [
      { name: 'factline', trial: () => sqliteStepsTrial(true) },
      { name: 'consumer', trial: () => sqliteStepsTrial(false) },
    ],
  },
  {
    name: 'workflow-sqlite-timer-lateness',
    description: `${TIMERS} pending timers due over ${SPREAD_MS / 1000} s on SQLite; lateness p50/p99 (ms) past due, idle and under append load`,
    unit: 'timers/s',
    repeat: 1,
    subjects: [
      { name: 'factline', trial: () => sqliteLatenessTrial(false) },
      { name: 'loaded', trial: () => sqliteLatenessTrial(true) },
    ],
  },
];
