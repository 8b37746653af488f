// `npm run bench [-- <filter>]`: installs the peer libraries into bench/.peers on
// first use (so they never weigh on the project's own install), then runs the
// workloads whose name contains <filter>. With FACTLINE_BENCH_BUILT=1 it builds
// the packages first and measures the build instead of the sources
// (src/code-under-test.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';

const here = new URL('.', import.meta.url);
const peers = new URL('.peers/', here);
const wanted = readFileSync(new URL('peers/package.json', here), 'utf8');
const installed = existsSync(new URL('package.json', peers))
  ? readFileSync(new URL('package.json', peers), 'utf8')
  : '';

if (
  process.env.FACTLINE_BENCH_NO_PEERS !== '1' &&
  (wanted !== installed || !existsSync(new URL('node_modules', peers)))
) {
  console.log('# installing benchmark peers into bench/.peers (first run only)…');
  mkdirSync(peers, { recursive: true });
  copyFileSync(new URL('peers/package.json', here), new URL('package.json', peers));
  try {
    execFileSync('npm', ['install', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: peers,
      stdio: 'inherit',
    });
  } catch {
    console.log('# peer install failed: peer subjects will be skipped');
  }
}

const built = process.env.FACTLINE_BENCH_BUILT === '1';
if (built) {
  console.log('# FACTLINE_BENCH_BUILT=1: building the packages (npm run build); the build is measured');
  const build = spawnSync('npm', ['run', 'build', '--silent'], {
    cwd: new URL('..', here).pathname,
    stdio: 'inherit',
  });
  if (build.status !== 0) {
    console.error('# npm run build failed: nothing measured');
    process.exit(build.status ?? 1);
  }
}

const result = spawnSync(
  process.execPath,
  [
    ...(built ? [] : ['--conditions=factline-source']),
    '--expose-gc',
    '--import',
    'tsx',
    new URL('src/main.ts', here).pathname,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
