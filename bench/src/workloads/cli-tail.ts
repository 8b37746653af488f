/**
 * `cli-events-tail` (`npm run bench -- cli`): does `factline events tail` keep up with an application
 * appending RATE events/s? A SQLite store file (the store's defaults) receives RATE single-event
 * appends a second for SECONDS seconds (every 20 ms, RATE/50 appends on as many streams at once, so
 * that group commit carries them), while the real bin (`factline events tail --json --count N`, a
 * child process on its read-only connection) follows the log; the clock starts once it printed the
 * event already there (it is up).
 * Rate = events the tail printed per second, from the first append to its last line. Extras:
 * `appendRate` (what the application achieved), `maxBehind` (most events appended but not yet
 * printed, sampled every 20 ms) and `catchUpMs` (last line printed − last append resolved).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getSqliteEventStore, type SqliteEventStore } from '@factline/sqlite';
import { NODE_FLAGS, packageModule } from '../code-under-test.ts';
import type { Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';

const RATE = Number(process.env.FACTLINE_BENCH_TAIL_RATE ?? 5000);
const SECONDS = Number(process.env.FACTLINE_BENCH_TAIL_SECONDS ?? 5);
const TICK_MS = 20;
const PER_TICK = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
const TOTAL = PER_TICK * Math.round((SECONDS * 1000) / TICK_MS);
const BIN = packageModule('cli', 'bin');

function tailTrial(): Trial {
  let dir = '';
  let store: SqliteEventStore;
  const figures = { appendRate: 0, maxBehind: 0, catchUpMs: 0 };
  return {
    setup: async () => {
      dir = mkdtempSync(join(tmpdir(), 'factline-bench-tail-'));
      store = getSqliteEventStore({ path: join(dir, 'app.db') });
      // The file exists (and is migrated) before the tail opens it read-only.
      await store.append('setup-1', [{ type: 'Setup', data: {} }]);
    },
    run: async () => {
      const child = spawn(
        process.execPath,
        [
          ...NODE_FLAGS,
          BIN,
          'events',
          'tail',
          '--db',
          `sqlite:${join(dir, 'app.db')}`,
          '--from',
          '1',
          '--count',
          String(TOTAL + 1),
          '--json',
          '--interval-ms',
          '20',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let printed = 0;
      let lastPrintedAt = 0;
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.stdout.on('data', (chunk: Buffer) => {
        for (const byte of chunk) if (byte === 10) printed += 1;
        lastPrintedAt = performance.now();
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      // The clock starts once the tail printed the setup event: it is up and following.
      const ready = performance.now() + 30_000;
      while (printed < 1) {
        if (performance.now() > ready || child.exitCode !== null)
          throw new Error(`the tail did not start: ${stderr.trim()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      printed = 0;
      const started = performance.now();
      let appended = 0;
      let tick = 0;
      while (appended < TOTAL) {
        const due = started + tick * TICK_MS - performance.now();
        if (due > 1) await new Promise((resolve) => setTimeout(resolve, due));
        const batch = Array.from({ length: PER_TICK }, (_, j) =>
          store.append(`order-${j}`, [{ type: 'ItemAdded', data: orderData(appended + j) }]),
        );
        await Promise.all(batch);
        appended += PER_TICK;
        tick += 1;
        figures.maxBehind = Math.max(figures.maxBehind, appended - printed);
      }
      const appendsDone = performance.now();
      figures.appendRate = TOTAL / ((appendsDone - started) / 1000);
      const deadline = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await exited;
      clearTimeout(deadline);
      if (code !== 0 || printed !== TOTAL) {
        throw new Error(`the tail printed ${printed} of ${TOTAL} events (exit ${code}): ${stderr.trim()}`);
      }
      figures.catchUpMs = Math.max(0, lastPrintedAt - appendsDone);
      return { units: TOTAL, seconds: (lastPrintedAt - started) / 1000 };
    },
    extras: () => ({ ...figures }),
    teardown: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const cliWorkloads: Workload[] = [
  {
    name: 'cli-events-tail',
    description: `factline events tail following ${RATE.toLocaleString('en')} appends/s for ${SECONDS} s on a SQLite file (the bin as a child process)`,
    unit: 'events/s',
    subjects: [{ name: 'factline', trial: tailTrial }],
  },
];
