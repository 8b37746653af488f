import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

const child = new URL('./fixtures/silent-transport-child.ts', import.meta.url).pathname;

/** Runs the fixture's conformance suite, one case only, and gives its output and exit code. */
function runCase(name: string, reporter: 'tap' | 'spec'): Promise<{ code: number | null; out: string }> {
  const pattern = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // Without the parent runner's context, the child reports as a process of its own (TAP text), not to it.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return new Promise((resolve, reject) => {
    const run = spawn(
      process.execPath,
      [
        '--conditions=factline-source',
        '--import',
        'tsx',
        `--test-name-pattern=${pattern}`,
        `--test-reporter=${reporter}`,
        child,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, env },
    );
    let out = '';
    run.stdout.on('data', (chunk) => {
      out += chunk;
    });
    run.stderr.on('data', (chunk) => {
      out += chunk;
    });
    run.on('error', reject);
    run.on('close', (code) => resolve({ code, out }));
  });
}

describe('testTransportConformance', () => {
  it("adds what the transport told createTransport's onError to a failing case's message (the first 10 and the last 10, timed), then what diagnose says", async () => {
    const name = 'delivers what was published, whole and in publish order per key';
    // TAP prints the failure's message, spec its stack: both carry what was reported.
    const [tap, spec] = await Promise.all([runCase(name, 'tap'), runCase(name, 'spec')]);
    assert.equal(spec.code, 1, spec.out);
    assert.match(spec.out, /received 0 deliveries[^\n]*\n {2,}the transport reported to onError meanwhile \(\d+\):/);
    const { code, out } = tap;
    assert.equal(code, 1, out);
    assert.match(out, /not ok \d+ - delivers what was published/);
    const count = Number(/the transport reported to onError meanwhile \((\d+)\)/.exec(out)?.[1]);
    assert.ok(count > 20, `${count} told: the 5 s case pulls every 50 ms`);
    assert.match(out, new RegExp(`\\(${count - 20} more\\)`));
    const told = [...out.matchAll(/- \+(\d+) ms consume Error: pull (\d+) of \S+ failed: injected/g)];
    const pulls = told.map((m) => Number(m[2]));
    const tail = Array.from({ length: 10 }, (_, i) => count - 9 + i);
    assert.deepEqual(pulls, [...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ...tail], 'the first 10 and the last 10, in order');
    assert.ok(Number(told[0]?.[1]) < 1000, 'timed from the start of the case');
    assert.ok(Number(told.at(-1)?.[1]) >= 4000, 'the last near the 5 s deadline');
    // Then what `diagnose` said of the transport before it was closed, each of its lines indented.
    for (const output of [tap.out, spec.out]) {
      assert.match(
        output,
        /the backend's state \(diagnose\):\n {4,}silent: subscribed t\w+\/g\w+\n {4,}nothing handed out/,
      );
    }
  });
});
