// Runs every *.test.ts in the workspace with Node's test runner (TypeScript
// through tsx, workspace packages from source), FACTLINE_TEST_CONCURRENCY files
// at once (default 3), then prints each skip reason with its count, the ten
// slowest files and one plain summary line: "N passed, N failed, N skipped".
// Every file has a deadline (FACTLINE_TEST_FILE_TIMEOUT_MS, default 10 min)
// from its start to its process's exit: a file whose tests are done but
// which a handle left open keeps alive (a client that reconnects for ever)
// fails naming itself, and the run goes on instead of waiting for it.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = ['packages', 'examples', 'bench/src', 'docs', 'scripts'];
const filter = process.argv.slice(2);

function findTests(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) findTests(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

mkdirSync(join(root, '.factline'), { recursive: true });
const files = roots
  .flatMap((r) => findTests(join(root, r)))
  .filter((f) => filter.length === 0 || filter.some((word) => f.includes(word)))
  .sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

const fileTimeoutMs = Number(process.env.FACTLINE_TEST_FILE_TIMEOUT_MS ?? 600_000);
if (!Number.isInteger(fileTimeoutMs) || fileTimeoutMs <= 0) {
  console.error(
    `FACTLINE_TEST_FILE_TIMEOUT_MS must be a positive integer (ms), got '${process.env.FACTLINE_TEST_FILE_TIMEOUT_MS}'`,
  );
  process.exit(2);
}

// Files run side by side (each in its own process): most of their time is spent waiting on servers,
// and Node's default (one fewer than the CPUs) runs them one at a time on a 2-CPU machine.
const concurrency = Number(process.env.FACTLINE_TEST_CONCURRENCY ?? 3);
if (!Number.isInteger(concurrency) || concurrency <= 0) {
  console.error(
    `FACTLINE_TEST_CONCURRENCY must be a positive integer (files at once), got '${process.env.FACTLINE_TEST_CONCURRENCY}'`,
  );
  process.exit(2);
}

const args = [
  '--conditions=factline-source',
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${concurrency}`,
  // Node's runner applies it to each file's process as a whole (and to any test that sets no timeout of its own).
  `--test-timeout=${fileTimeoutMs}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=./scripts/summary-reporter.mjs',
  '--test-reporter-destination=.factline/test-summary.json',
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env } });
child.on('exit', async (code, signal) => {
  const { readFileSync } = await import('node:fs');
  let summary;
  try {
    summary = JSON.parse(readFileSync(join(root, '.factline/test-summary.json'), 'utf8'));
  } catch {
    summary = undefined;
  }
  if (summary) {
    // Skips are allowed (a capability a backend lacks); a service CI needs fails its fixture instead.
    for (const [reason, count] of Object.entries(summary.skipReasons ?? {})) {
      console.log(`skipped: ${reason} (${count})`);
    }
    const slowest = Object.entries(summary.fileMs ?? {})
      .sort(([, a], [, b]) => b - a)
      .slice(0, 10);
    if (slowest.length > 1) {
      console.log('\nslowest files:');
      for (const [file, ms] of slowest)
        console.log(`  ${(ms / 1000).toFixed(1).padStart(6)} s  ${relative(root, file)}`);
    }
    console.log(`\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
