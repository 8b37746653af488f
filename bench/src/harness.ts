/**
 * One form for every benchmark in the project:
 * - a workload has a name (`sqlite-append-single`) and subjects (`factline`, `raw`, `emmett`, …);
 * - each subject runs a trial several times; the median is reported;
 * - every figure prints one line: `bench <workload> <subject> <value> <unit>`;
 * - ratios to the `raw` subject print as `bench <workload> <subject>/raw <ratio> x`;
 * - the run ends by writing its figures into `bench/results/latest.json` (other workloads' figures kept).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { BUILT } from './code-under-test.ts';
import { type TrialOutcome, trialInChild, trialInProcess } from './trial-outcome.ts';

/** One measured run: how many units of work `run` did. */
export interface Trial {
  /** Work before the clock starts (opening files, seeding). */
  setup?: () => Promise<void> | void;
  /**
   * The measured work; returns how many units (events, messages) it did, or
   * units and seconds when it timed itself (e.g. in a child process).
   */
  run: () => Promise<number | { units: number; seconds: number }> | number | { units: number; seconds: number };
  /** Extra figures the trial observed (conflict retries, failures, RSS), reported beside the rate. */
  extras?: () => Record<string, number>;
  teardown?: () => Promise<void> | void;
}

export interface Subject {
  name: string;
  /** Fewer repetitions than the workload's, for a slow subject. */
  repeat?: number;
  /** Makes a fresh trial for each repetition. Returns undefined (with a reason) when unavailable. */
  trial: () => Promise<Trial | string> | Trial | string;
  /**
   * Runs each trial in a child process of its own (for peers): a crash, an uncaught error or a
   * hang there fails this subject's figure only. The workload must be listed by the `module`
   * given to `runWorkload`.
   */
  isolate?: boolean;
  /** Extra Node flags of an isolated trial's child process (e.g. a `--require` preload). */
  execArgv?: string[];
  /** Deadline of one trial, setup to teardown (default FACTLINE_BENCH_TRIAL_TIMEOUT_MS or 15 minutes). */
  timeoutMs?: number;
}

export interface Workload {
  name: string;
  description: string;
  unit: string;
  /** Repetitions per subject (median reported). Default 3. */
  repeat?: number;
  /**
   * Runs one untimed trial of every subject first, so that each is measured
   * with its code already optimized by the JIT and its server-side plans and
   * functions compiled, not on its first pass through them.
   */
  warmup?: boolean;
  subjects: Subject[];
}

export interface Figure {
  workload: string;
  subject: string;
  value: number;
  unit: string;
  /** Set when the subject's trials failed: the first error; `value` is then 0. */
  failed?: string;
}

const figures: Figure[] = [];

export function report(workload: string, subject: string, value: number, unit: string): void {
  const rounded = unit === 'x' || unit === '%' ? Math.round(value * 100) / 100 : Math.round(value);
  figures.push({ workload, subject, value: rounded, unit });
  console.log(`bench ${workload} ${subject} ${rounded} ${unit}`);
}

/** A failed figure: `bench <workload> <subject> failed <unit>: <error>`. */
export function reportFailed(workload: string, subject: string, unit: string, error: string): void {
  const line = error.split('\n')[0] as string;
  figures.push({ workload, subject, value: 0, unit, failed: line });
  console.log(`bench ${workload} ${subject} failed ${unit}: ${line}`);
}

/** Options of `runWorkload`. */
export interface RunOptions {
  /** URL of the module whose `workloads` export lists the workload: where isolated trials find it. */
  module?: string;
}

/** The value at percentile `p` (0-100) of `sorted` (ascending): the nearest rank, 0 when empty. */
export const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/**
 * Runs every subject of `workload` (interleaved rounds, medians) and prints its figures. A subject
 * whose trial throws, crashes its process or outlives its deadline gets a failed figure with the
 * error, runs no further rounds, and is left out of the ratios; the others still print.
 * Returns the figures this workload reported.
 */
export async function runWorkload(workload: Workload, options: RunOptions = {}): Promise<Figure[]> {
  console.log(`# ${workload.name}: ${workload.description}`);
  const first = figures.length;
  const rates = new Map<string, number>();
  // Interleave subjects round by round so that machine noise hits them alike.
  const samples = new Map<string, number[]>();
  const extras = new Map<string, Record<string, number[]>>();
  const unavailable = new Set<string>();
  const failed = new Map<string, string>();
  const runTrial = (subject: Subject, warmup: boolean): Promise<TrialOutcome> => {
    if (!subject.isolate) return trialInProcess(subject, subject.timeoutMs);
    if (!options.module) return Promise.resolve({ kind: 'failed', error: 'isolated subject without a module' });
    return trialInChild(options.module, workload, subject, warmup, subject.timeoutMs);
  };
  const record = (subject: Subject, outcome: TrialOutcome): boolean => {
    if (outcome.kind === 'skipped') {
      console.log(`# ${workload.name} ${subject.name} skipped: ${outcome.reason}`);
      unavailable.add(subject.name);
      return false;
    }
    if (outcome.kind === 'failed') {
      console.log(`# ${workload.name} ${subject.name} failed: ${outcome.error}`);
      failed.set(subject.name, outcome.error);
      return false;
    }
    return true;
  };
  if (workload.warmup) {
    // Isolated subjects warm up in their own child process, before each measured trial.
    for (const subject of workload.subjects) {
      if (!subject.isolate) record(subject, await runTrial(subject, false));
    }
  }
  for (let round = 0; round < (workload.repeat ?? 3); round++) {
    // Rotate the order each round, so that no subject always runs right after the same neighbour
    // (whose teardown, e.g. dropping a large schema, may still load the machine).
    const n = workload.subjects.length;
    const order = workload.subjects.map((_, i) => workload.subjects[(i + round) % n] as Subject);
    for (const subject of order) {
      if (unavailable.has(subject.name) || failed.has(subject.name)) continue;
      if (round >= (subject.repeat ?? Number.POSITIVE_INFINITY)) continue;
      const outcome = await runTrial(subject, workload.warmup === true);
      if (!record(subject, outcome) || outcome.kind !== 'done') continue;
      const subjectRates = samples.get(subject.name) ?? [];
      subjectRates.push(outcome.units / outcome.seconds);
      if (process.env.FACTLINE_BENCH_SAMPLES === '1')
        console.log(`# sample ${workload.name} ${subject.name} ${Math.round(outcome.units / outcome.seconds)}`);
      samples.set(subject.name, subjectRates);
      const bucket = extras.get(subject.name) ?? {};
      for (const [key, value] of Object.entries(outcome.extras)) bucket[key] = [...(bucket[key] ?? []), value];
      extras.set(subject.name, bucket);
    }
  }
  for (const [name, values] of samples) {
    if (failed.has(name)) continue;
    const rate = median(values);
    rates.set(name, rate);
    report(workload.name, name, rate, workload.unit);
    for (const [key, list] of Object.entries(extras.get(name) ?? {}))
      report(
        workload.name,
        `${name}.${key}`,
        median(list),
        key.endsWith('MB') ? 'MB' : key.endsWith('Pct') ? '%' : 'count',
      );
  }
  for (const [name, error] of failed) reportFailed(workload.name, name, workload.unit, error);
  const raw = rates.get('raw');
  for (const [name, rate] of rates) {
    if (name !== 'raw' && raw) report(workload.name, `${name}/raw`, rate / raw, 'x');
  }
  const ours = rates.get('factline');
  for (const [name, rate] of rates) {
    if (name !== 'raw' && name !== 'factline' && ours && rate > 0)
      report(workload.name, `factline/${name}`, ours / rate, 'x');
  }
  return figures.slice(first);
}

/**
 * Writes this run's figures into `path`, keeping the figures of workloads this
 * run did not select (so `npm run bench -- postgres` does not erase the SQLite
 * figures). Each figure carries the date of the run that measured it and the
 * code it measured (`code`: 'source' or 'built', code-under-test.ts).
 */
export function writeResults(path: URL, filter: string): void {
  mkdirSync(new URL('.', path), { recursive: true });
  const date = new Date().toISOString();
  let kept: (Figure & { date?: string })[] = [];
  let previousDate: string | undefined;
  if (existsSync(path)) {
    try {
      const previous = JSON.parse(readFileSync(path, 'utf8')) as {
        date?: string;
        figures?: (Figure & { date?: string })[];
      };
      previousDate = previous.date;
      const rerun = new Set(figures.map((f) => f.workload));
      kept = (previous.figures ?? [])
        .filter((f) => !rerun.has(f.workload))
        .map((f) => ({ ...f, date: f.date ?? previousDate }));
    } catch {
      kept = [];
    }
  }
  const result = {
    date,
    filter,
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    figures: [...kept, ...figures.map((f) => ({ ...f, date, code: BUILT ? 'built' : 'source' }))],
  };
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `# wrote ${figures.length} figures (kept ${kept.length} of other workloads) to bench/results/latest.json`,
  );
}
