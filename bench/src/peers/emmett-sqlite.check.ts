/**
 * Self-check for the Emmett SQLite peer: runs each trial once, small, in a temp directory, and prints
 * units, seconds, rate and extras.
 *
 *   node --conditions=factline-source --import tsx bench/src/peers/emmett-sqlite.check.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Trial } from '../harness.ts';
import {
  emmettAppendBatch10,
  emmettAppendSingle,
  emmettConcurrent16,
  emmettConsumerScan,
  emmettHot16,
  emmettReadStream,
  emmettSqliteSettings,
} from './emmett-sqlite.ts';

const checks: [string, (dir: string) => Promise<Trial | string>][] = [
  ['append-single count=200', (dir) => emmettAppendSingle(dir, 200)],
  ['append-batch10 streams=20 rounds=5', (dir) => emmettAppendBatch10(dir, 20, 5)],
  ['concurrent16 perWriter=10', (dir) => emmettConcurrent16(dir, 10)],
  ['hot16 perWriter=5', (dir) => emmettHot16(dir, 5)],
  ['read-stream reads=20', (dir) => emmettReadStream(dir, 20)],
  ['consumer-scan total=2000 (default pulling)', (dir) => emmettConsumerScan(dir, 2000)],
  [
    'consumer-scan total=2000 (batchSize=1000, 0 ms)',
    (dir) => emmettConsumerScan(dir, 2000, { batchSize: 1000, pullingFrequencyInMs: 0 }),
  ],
];

const tempDir = () => mkdtempSync(join(tmpdir(), 'factline-emmett-check-'));

const settingsDir = tempDir();
try {
  const settings = await emmettSqliteSettings(settingsDir);
  console.log(`settings ${typeof settings === 'string' ? `unavailable: ${settings}` : JSON.stringify(settings)}`);
} finally {
  rmSync(settingsDir, { recursive: true, force: true });
}

let failed = false;
for (const [name, make] of checks) {
  const dir = tempDir();
  try {
    const trial = await make(dir);
    if (typeof trial === 'string') {
      console.log(`${name}: skipped: ${trial}`);
      continue;
    }
    await trial.setup?.();
    const started = process.hrtime.bigint();
    const done = await trial.run();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    // A trial may time itself and report { units, seconds } (see harness.ts).
    const { units, seconds } = typeof done === 'number' ? { units: done, seconds: elapsed } : done;
    const extras = trial.extras?.() ?? {};
    await trial.teardown?.();
    const rate = (units / seconds).toFixed(1);
    console.log(
      `${name}: units=${units} seconds=${seconds.toFixed(3)} rate=${rate}/s extras=${JSON.stringify(extras)}`,
    );
  } catch (error) {
    failed = true;
    console.log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
process.exitCode = failed ? 1 : 0;
