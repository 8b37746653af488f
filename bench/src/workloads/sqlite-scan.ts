import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getSqliteEventStore } from '@factline/sqlite';
import Sqlite from 'better-sqlite3';
import { NODE_FLAGS } from '../code-under-test.ts';
import type { Subject, Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import { emmettSubject } from './sqlite.ts';

const seeded = new Map<number, string>();
const scanDir = join(tmpdir(), `factline-bench-scan-${process.pid}`);

/** Removes the seeded logs (hundreds of MB for the 1M-event one). */
export function removeScanFiles(): void {
  rmSync(scanDir, { recursive: true, force: true });
}

/** A store file holding `total` events over 1,000 streams, written once per run and reused. */
async function seededFile(total: number): Promise<string> {
  const known = seeded.get(total);
  if (known && existsSync(known)) return known;
  mkdirSync(scanDir, { recursive: true });
  const path = join(scanDir, `log-${total}.db`);
  const store = getSqliteEventStore({ path, synchronous: 'normal' });
  const perAppend = 1000;
  for (let i = 0; i < total / perAppend; i++) {
    await store.append(
      `order-${i % 1000}`,
      Array.from({ length: perAppend }, (_, j) => ({ type: 'ItemAdded', data: orderData(j) })),
    );
  }
  await store.close();
  seeded.set(total, path);
  return path;
}

/** Runs a scan in a child process so that its peak RSS is its own. */
function scanInChild(path: string, mode: 'factline' | 'raw'): { units: number; seconds: number; maxRssMB: number } {
  const child = spawnSync(
    process.execPath,
    [...NODE_FLAGS, new URL('../scan-child.ts', import.meta.url).pathname, path, mode],
    { encoding: 'utf8' },
  );
  if (child.status !== 0) throw new Error(`scan child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() as string);
}

function childSubject(name: 'factline' | 'raw', total: number): Subject {
  let rss = 0;
  return {
    name,
    trial: () => ({
      run: async () => {
        const result = scanInChild(await seededFile(total), name);
        rss = result.maxRssMB;
        if (result.units !== total) throw new Error(`${name} scan saw ${result.units} of ${total} events`);
        return result;
      },
      extras: () => ({ maxRssMB: rss }),
    }),
  };
}

const SCAN = 200_000;

export const sqliteScanWorkloads: Workload[] = [
  {
    name: 'sqlite-readall-scan',
    description: `full readAll of a ${SCAN.toLocaleString('en')}-event log (raw: SELECT * iterated, no parsing)`,
    unit: 'events/s',
    subjects: [
      {
        name: 'factline',
        trial: () => {
          let store: ReturnType<typeof getSqliteEventStore>;
          return {
            setup: async () => {
              store = getSqliteEventStore({ path: await seededFile(SCAN) });
            },
            run: async () => {
              let n = 0;
              for await (const _ of store.readAll()) n++;
              return n;
            },
            teardown: () => store.close(),
          };
        },
      },
      {
        name: 'raw',
        trial: () => {
          let db: Sqlite.Database;
          return {
            setup: async () => {
              db = new Sqlite(await seededFile(SCAN), { readonly: true });
            },
            run: () => {
              let n = 0;
              for (const _ of db.prepare('SELECT * FROM factline_events').iterate()) n++;
              return n;
            },
            teardown: () => {
              db.close();
            },
          };
        },
      },
      emmettSubject((p, dir) => p.emmettConsumerScan(dir, 5000)),
    ],
  },
  {
    name: 'sqlite-scan-1m',
    description: 'full scan of a 1,000,000-event log in a fresh process: rate and peak RSS (goal < 200 MB)',
    unit: 'events/s',
    repeat: 1,
    subjects: [childSubject('factline', 1_000_000), childSubject('raw', 1_000_000)],
  },
];
