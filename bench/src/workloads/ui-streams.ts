/**
 * `ui-streams` (`npm run bench -- ui-streams`): how fast the dashboard's streams page answers on a
 * 1,000,000-event SQLite store (100,000 streams of 10 events). The store file is filled once with
 * batched appends (100 streams' appends in flight at once, so that group commit carries them) and
 * kept in .factline/bench-cache/ for the next run. The dashboard (`startUi`, in this process) is
 * asked GET /streams REQUESTS times in a row over a keep-alive connection, each request timed from
 * sending to the last byte of its answer. Rate = pages/s; extras: p50Us and p99Us latency (microseconds).
 * Subjects: the first page, a deep page (`?after=` near the end of the ids: keyset paging, no
 * OFFSET), and a prefix search.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { getSqliteEventStore } from '@factline/sqlite';
import type { RunningUi } from '../../../packages/cli/src/ui/start-ui.ts';
import { packageModule } from '../code-under-test.ts';
import type { Subject, Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';

// The CLI's internals, from the code the bench measures (code-under-test.ts).
const { openSqliteDeadLetterOperator, openSqliteInspector } = (await import(
  packageModule('cli', 'inspect/sqlite-inspector')
)) as typeof import('../../../packages/cli/src/inspect/sqlite-inspector.ts');
const { startUi } = (await import(
  packageModule('cli', 'ui/start-ui')
)) as typeof import('../../../packages/cli/src/ui/start-ui.ts');

const STREAMS = 100_000;
const PER_STREAM = 10;
const REQUESTS = Number(process.env.FACTLINE_BENCH_UI_REQUESTS ?? 200);
const cacheDir = new URL('../../../.factline/bench-cache/', import.meta.url).pathname;
const cached = join(cacheDir, `ui-streams-${STREAMS * PER_STREAM}.db`);
const streamId = (i: number) => `order-${String(i).padStart(6, '0')}`;

/** The 1M-event file, filled on first use (into a temporary name, renamed once complete). */
async function storeFile(): Promise<string> {
  if (existsSync(cached)) return cached;
  mkdirSync(cacheDir, { recursive: true });
  const filling = `${cached}.filling`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${filling}${suffix}`, { force: true });
  const store = getSqliteEventStore({ path: filling, synchronous: 'normal' });
  const inFlight = 100;
  for (let first = 0; first < STREAMS; first += inFlight) {
    const appends = [];
    for (let i = first; i < Math.min(STREAMS, first + inFlight); i++) {
      const events = Array.from({ length: PER_STREAM }, (_, j) => ({ type: 'ItemAdded', data: orderData(j) }));
      appends.push(store.append(streamId(i), events, { expectedVersion: 'no-stream' }));
    }
    await Promise.all(appends);
  }
  store.database.pragma('wal_checkpoint(TRUNCATE)');
  await store.close();
  renameSync(filling, cached);
  return cached;
}

/** GET `path` on the dashboard; resolves with the milliseconds to the answer's last byte. */
function timedGet(ui: RunningUi, agent: Agent, path: string): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    request(new URL(path, ui.url), { agent }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      response.on('end', () => {
        if (response.statusCode !== 200 || bytes < 1000) reject(new Error(`GET ${path}: ${response.statusCode}`));
        else resolve(Number(process.hrtime.bigint() - started) / 1e6);
      });
    })
      .on('error', reject)
      .end();
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;

function pageSubject(name: string, path: string): Subject {
  return {
    name,
    trial: (): Trial => {
      let ui: RunningUi | undefined;
      let agent: Agent | undefined;
      let latencies: number[] = [];
      return {
        setup: async () => {
          const path = await storeFile();
          ui = await startUi({
            inspector: openSqliteInspector(path),
            openDeadLetterOperator: async () => openSqliteDeadLetterOperator(path),
            port: 0,
          });
          agent = new Agent({ keepAlive: true, maxSockets: 1 });
        },
        run: async () => {
          if (!ui || !agent) throw new Error('not set up');
          latencies = [];
          for (let i = 0; i < REQUESTS; i++) latencies.push(await timedGet(ui, agent, path));
          return REQUESTS;
        },
        extras: () => {
          const sorted = [...latencies].sort((a, b) => a - b);
          return {
            p50Us: Math.round(percentile(sorted, 50) * 1000),
            p99Us: Math.round(percentile(sorted, 99) * 1000),
          };
        },
        teardown: async () => {
          agent?.destroy();
          await ui?.close();
        },
      };
    },
  };
}

export const uiWorkloads: Workload[] = [
  {
    name: 'ui-streams',
    description: `factline ui GET /streams on a ${(STREAMS * PER_STREAM).toLocaleString('en')}-event SQLite store (${STREAMS.toLocaleString('en')} streams), ${REQUESTS} requests in a row`,
    unit: 'pages/s',
    warmup: true,
    subjects: [
      pageSubject('first-page', '/streams'),
      pageSubject('deep-page', `/streams?after=${streamId(STREAMS - 1000)}`),
      pageSubject('prefix-search', `/streams?prefix=${streamId(54_321).slice(0, -1)}`),
    ],
  },
];
