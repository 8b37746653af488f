/**
 * Runs one trial of a subject and hands back its outcome instead of throwing:
 * - in this process, with a deadline and with uncaught errors and unhandled rejections of the
 *   trial's time counted against it;
 * - or, for a subject marked `isolate` (the peers), in a child process of its own
 *   (trial-child.ts), so that a peer's crash, `process.exit`, stray error event or hang fails that
 *   subject's figure only and the run goes on.
 */
import { spawn } from 'node:child_process';
import { NODE_FLAGS } from './code-under-test.ts';
import type { Subject, Workload } from './harness.ts';

/** What one trial came to. */
export type TrialOutcome =
  | { kind: 'done'; units: number; seconds: number; extras: Record<string, number> }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; error: string };

/** Default deadline of one trial, setup to teardown. */
export const TRIAL_TIMEOUT_MS = Number(process.env.FACTLINE_BENCH_TRIAL_TIMEOUT_MS ?? 15 * 60_000);

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);

/** One trial of `subject` in this process; never throws. */
export async function trialInProcess(subject: Subject, timeoutMs = TRIAL_TIMEOUT_MS): Promise<TrialOutcome> {
  let fail: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // A trial's stray error (e.g. an 'error' event nobody listens to) fails the trial, not the run.
  const onUncaught = (error: unknown) => fail(error);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const timer = setTimeout(() => fail(new Error(`no result after ${timeoutMs} ms`)), timeoutMs);
  let teardown: (() => Promise<void> | void) | undefined;
  try {
    const trial = await Promise.race([subject.trial(), failed]);
    if (typeof trial === 'string') return { kind: 'skipped', reason: trial };
    teardown = trial.teardown;
    await Promise.race([trial.setup?.(), failed]);
    const started = process.hrtime.bigint();
    const done = await Promise.race([trial.run(), failed]);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const extras = trial.extras?.() ?? {};
    teardown = undefined;
    await Promise.race([trial.teardown?.(), failed]);
    return typeof done === 'number'
      ? { kind: 'done', units: done, seconds: elapsed, extras }
      : { kind: 'done', units: done.units, seconds: done.seconds, extras };
  } catch (error) {
    // Still release what the trial holds; a teardown failure after a failure adds nothing to report.
    if (teardown) await Promise.race([Promise.resolve().then(teardown), failed]).catch(() => {});
    return { kind: 'failed', error: describe(error) };
  } finally {
    clearTimeout(timer);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
}

/** The last line of `stderr` that names an error (`SqliteError: …`), not a stack frame. */
const lastError = (stderr: string): string | undefined =>
  stderr
    .split('\n')
    .filter((line) => /\w*Error\b/.test(line) && !/^\s+at /.test(line))
    .pop()
    ?.trim();

const root = new URL('../../', import.meta.url).pathname;

/**
 * One trial of `subject` in a child process that imports `module` (whose `workloads` export lists
 * `workload`), runs an untimed trial first when `warmup`, then the measured one, and sends back
 * its outcome. A child that exits without one, or outlives the deadline (it is then killed), is a
 * failed trial.
 */
export function trialInChild(
  module: string,
  workload: Workload,
  subject: Subject,
  warmup: boolean,
  timeoutMs = TRIAL_TIMEOUT_MS,
): Promise<TrialOutcome> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        ...NODE_FLAGS,
        ...(subject.execArgv ?? []),
        new URL('./trial-child.ts', import.meta.url).pathname,
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          FACTLINE_BENCH_TRIAL: JSON.stringify({ module, workload: workload.name, subject: subject.name, warmup }),
        },
        stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      },
    );
    // The child's stderr goes on to ours; its tail names the error of a child that died without a result.
    let tail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    });
    let outcome: TrialOutcome | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (message) => {
      outcome = message as TrialOutcome;
    });
    child.on('error', (error) => {
      outcome ??= { kind: 'failed', error: `could not start the trial's process: ${error.message}` };
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve({ kind: 'failed', error: `no result after ${timeoutMs} ms (child process killed)` });
      else if (outcome) resolve(outcome);
      else {
        const error = lastError(tail);
        const ended = `the trial's process ended without a result (${signal ? `signal ${signal}` : `exit code ${code}`})`;
        resolve({ kind: 'failed', error: error ? `${ended}: ${error}` : ended });
      }
    });
  });
}
