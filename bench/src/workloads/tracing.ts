import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OperationTracer, uuidv7 } from '@factline/core';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteOutbox,
  getSqliteTracer,
  getSqliteTransport,
} from '@factline/sqlite';
import Sqlite from 'better-sqlite3';
import type { Workload } from '../harness.ts';
import { orderData } from './payload.ts';

/** Events in the store: 1,000,000 unless FACTLINE_BENCH_TRACE_EVENTS says otherwise (a quick check). */
const TOTAL = Number(process.env.FACTLINE_BENCH_TRACE_EVENTS ?? 1_000_000);
/** The traced operation: 25 events, each handled by 3 groups: 100 nodes. */
const TARGET = 'trace-target';
const TARGET_EVENTS = 25;
const GROUPS = ['inventory', 'payment', 'notification'];
const TRACES_PER_TRIAL = 20;

const dir = join(tmpdir(), `factline-bench-tracing-${process.pid}`);
let seeded: string | undefined;

/** Removes the seeded store (a few hundred MB at 1,000,000 events). */
export function removeTracingFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A store of `TOTAL` events in operations of 10 (one stream and correlation id
 * each), every 10th operation's events marked handled by the 3 groups, and the
 * target operation somewhere in the middle: written in one transaction through
 * prepared statements, with every table and index the trace reads.
 */
function seed(): string {
  if (seeded) return seeded;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `trace-${TOTAL}.db`);
  const store = getSqliteEventStore({ path, synchronous: 'normal' });
  const database = store.database;
  getSqliteTransport({ database });
  getSqliteOutbox({ database });
  getSqliteInbox({ database });
  getSqliteDeadLetterStore({ database });
  const insertEvent = database.prepare(
    `INSERT INTO factline_events (event_id, stream_id, stream_version, category, type, schema_version, data, metadata, recorded_at)
     VALUES (?, ?, ?, 'order', ?, 1, ?, ?, ?)`,
  );
  const mark = database.prepare('INSERT INTO factline_inbox (consumer, message_id, at) VALUES (?, ?, ?)');
  const start = Date.now() - TOTAL;
  const targetAt = Math.floor(TOTAL / 2);
  database.transaction(() => {
    let written = 0;
    for (let op = 0; written < TOTAL; op++) {
      const target = written >= targetAt && written < targetAt + TARGET_EVENTS;
      const size = target ? TARGET_EVENTS : 10;
      const correlationId = target ? TARGET : `op-${op}`;
      const ids: string[] = [];
      for (let v = 1; v <= size && written < TOTAL; v++, written++) {
        const id = uuidv7();
        // A binary tree of causes: event v caused by event floor(v / 2).
        const causationId = v === 1 ? undefined : ids[Math.floor(v / 2) - 1];
        ids.push(id);
        const metadata = JSON.stringify({ correlationId, ...(causationId ? { causationId } : {}) });
        insertEvent.run(id, `order-${op}`, v, 'OrderEvent', JSON.stringify(orderData(v)), metadata, start + written);
        if (target || op % 10 === 0) for (const group of GROUPS) mark.run(group, id, start + written + 1);
      }
    }
  })();
  database.exec('ANALYZE');
  database.close();
  seeded = path;
  return seeded;
}

export const tracingWorkloads: Workload[] = [
  {
    name: 'tracing-trace-operation',
    description: `traceOperation of a 100-node operation in a SQLite store of ${TOTAL.toLocaleString('en')} events (goal < 50 ms a trace)`,
    unit: 'traces/s',
    warmup: true,
    subjects: [
      {
        name: 'factline',
        trial: () => {
          let db: Sqlite.Database | undefined;
          let tracer: OperationTracer | undefined;
          let elapsed = 0;
          return {
            setup: () => {
              db = new Sqlite(seed(), { readonly: false });
              const plan = db
                .prepare(
                  `EXPLAIN QUERY PLAN SELECT position FROM factline_events
                   WHERE json_extract(metadata, '$.correlationId') = ? ORDER BY position LIMIT ?`,
                )
                .all(TARGET, 1001) as { detail: string }[];
              console.log(`# plan (events by correlation id): ${plan.map((p) => p.detail).join(' | ')}`);
              tracer = getSqliteTracer({ database: db });
            },
            run: async () => {
              const began = performance.now();
              for (let i = 0; i < TRACES_PER_TRIAL; i++) {
                const tree = await (tracer as OperationTracer).traceOperation(TARGET);
                if (tree.nodeCount !== 100 || tree.truncated) {
                  throw new Error(`the trace has ${tree.nodeCount} nodes (truncated: ${tree.truncated}), not 100`);
                }
              }
              elapsed = performance.now() - began;
              return TRACES_PER_TRIAL;
            },
            extras: () => ({ msPerTrace: Math.round((elapsed / TRACES_PER_TRIAL) * 100) / 100 }),
            teardown: () => {
              db?.close();
            },
          };
        },
      },
    ],
  },
];
