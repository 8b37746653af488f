/**
 * Workflow instances with a long history (`npm run bench -- long-instance`): one instance whose
 * stream holds HISTORY recorded events (HISTORY / 2 inputs, each recorded with one `send` output),
 * then inputs to that instance, one at a time, each a whole `handler.handle` (load the instance,
 * decide, append). Subject `factline` = with snapshots (`every: SNAPSHOT_EVERY`, so an input reads
 * the snapshot and a tail of SNAPSHOT_EVERY / 2 events on average, and one input in SNAPSHOT_EVERY / 2
 * also writes a snapshot, awaited); `no-snapshot` = the same handler without them (every input
 * folds the whole stream). Units: inputs/s.
 * - `workflow-sqlite-long-instance`: a fresh SQLite file (WAL, synchronous FULL), snapshots in it.
 * - `workflow-postgres-long-instance`: a fresh PostgreSQL schema (FACTLINE_POSTGRES_URL), snapshots in it;
 *   skipped with the reason when the server does not answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createMessage,
  createWorkflowHandler,
  defineWorkflow,
  type Event,
  type EventStore,
  type SnapshotStore,
  send,
  type WorkflowHandler,
} from '@factline/core';
import { getSqliteEventStore, getSqliteSnapshotStore } from '@factline/sqlite';
import type { Trial, Workload } from '../harness.ts';
import { dropSchema, freshSchema, loadFactlinePostgres, pgUnavailable, pgUrl } from './postgres.ts';

/** Recorded events of the instance before the measured inputs. */
const HISTORY = Number(process.env.FACTLINE_BENCH_WORKFLOW_HISTORY ?? 1000);
const SNAPSHOT_EVERY = 100;

type Tick = Event<'Tick', { id: string; amount: number }>;
type Counted = Event<'Counted', { count: number; total: number }>;
interface Tally {
  count: number;
  total: number;
}

/** A running total per instance: each tick is counted and answered with the totals its decision saw. */
const tally = defineWorkflow<Tally, Tick, Counted>({
  name: 'tally',
  inputs: ['Tick'],
  start: ['Tick'],
  correlate: (input) => input.data.id,
  initialState: () => ({ count: 0, total: 0 }),
  evolve: (state, recorded) =>
    recorded.kind === 'input' ? { count: state.count + 1, total: state.total + recorded.message.data.amount } : state,
  decide: (input, state) =>
    send({ type: 'Counted', data: { count: state.count + 1, total: state.total + input.data.amount } }),
});

interface Backend {
  events: EventStore;
  snapshots: SnapshotStore;
  close(): Promise<void>;
}

/**
 * Setup: the instance's history recorded through a handler with snapshots (so seeding stays
 * linear), then, for `no-snapshot`, a handler without them. Run: `inputs` inputs.
 */
function longInstanceTrial(open: () => Promise<Backend | string>, inputs: number, snapshots: boolean) {
  return async (): Promise<Trial | string> => {
    const backend = await open();
    if (typeof backend === 'string') return backend;
    const failures: unknown[] = [];
    const withSnapshots = createWorkflowHandler(tally, {
      store: backend.events,
      snapshots: {
        store: backend.snapshots,
        version: 1,
        every: SNAPSHOT_EVERY,
        onError: (error) => failures.push(error),
      },
    });
    let handler: WorkflowHandler = withSnapshots;
    let sent = 0;
    const tick = async () => {
      const outcome = await handler.handle(createMessage({ type: 'Tick', data: { id: 'i1', amount: ++sent % 7 } }));
      if (outcome !== 'recorded') throw new Error(`input ${sent}: ${outcome}`);
    };
    return {
      setup: async () => {
        while (sent < HISTORY / 2) await tick();
        if (!snapshots) handler = createWorkflowHandler(tally, { store: backend.events });
      },
      run: async () => {
        for (let i = 0; i < inputs; i++) await tick();
        const { version } = await backend.events.readStream('tally-i1', { from: Number.MAX_SAFE_INTEGER });
        if (version !== sent * 2) throw new Error(`the instance is at ${version}, expected ${sent * 2}`);
        if (failures.length > 0) throw new Error(`snapshot failures: ${String(failures[0])}`);
        return inputs;
      },
      teardown: () => backend.close(),
    };
  };
}

function openSqlite(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'factline-bench-long-instance-'));
  const events = getSqliteEventStore({ path: join(dir, 'factline.db') });
  return Promise.resolve({
    events,
    snapshots: getSqliteSnapshotStore({ database: events.database }),
    close: async () => {
      await events.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

async function openPostgres(): Promise<Backend | string> {
  const unavailable = await pgUnavailable();
  if (unavailable) return unavailable;
  const factline = await loadFactlinePostgres();
  if (typeof factline === 'string') return factline;
  const schema = freshSchema('long_instance');
  const events = await factline.getPostgresEventStore({ connectionString: pgUrl, schema, poolSize: 4 });
  return {
    events,
    snapshots: await factline.getPostgresSnapshotStore({ pool: events.pool, schema }),
    close: async () => {
      await events.close();
      await dropSchema(schema);
    },
  };
}

const description = (store: string) =>
  `inputs to one ${store} workflow instance of ${HISTORY.toLocaleString('en')} recorded events: factline = ` +
  `with snapshots (every ${SNAPSHOT_EVERY}), no-snapshot = folding the whole stream for each input`;

export const workflowSnapshotWorkloads: Workload[] = [
  {
    name: 'workflow-sqlite-long-instance',
    warmup: true,
    description: description('SQLite'),
    unit: 'inputs/s',
    subjects: [
      { name: 'factline', trial: longInstanceTrial(openSqlite, 200, true) },
      { name: 'no-snapshot', trial: longInstanceTrial(openSqlite, 50, false) },
    ],
  },
  {
    name: 'workflow-postgres-long-instance',
    warmup: true,
    description: description('PostgreSQL'),
    unit: 'inputs/s',
    subjects: [
      { name: 'factline', trial: longInstanceTrial(openPostgres, 200, true) },
      { name: 'no-snapshot', trial: longInstanceTrial(openPostgres, 50, false) },
    ],
  },
];
