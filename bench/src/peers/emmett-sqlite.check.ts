/**
 * Self-check for the Emmett SQLite peer: runs each trial once, small, in a temp directory, and prints
 * units, seconds, rate and extras.
 *
 *   node --conditions=factline-source --import tsx bench/src/peers/emmett-sqlite.check.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  emmettAppendBatch10,
  emmettAppendSingle,
  emmettConcurrent16,
  emmettConsumerScan,
  emmettHot16,
  emmettReadStream,
  emmettSqliteSettings,
} from './emmett-sqlite.ts';
import { type PeerCheck, runPeerChecks } from './peer-checks.ts';

const checks: PeerCheck<string>[] = [
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

const failed = await runPeerChecks(checks, tempDir, (dir) => rmSync(dir, { recursive: true, force: true }));
process.exitCode = failed ? 1 : 0;
