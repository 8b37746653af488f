// Child process of an isolated trial (see trial-outcome.ts): finds the subject named in
// FACTLINE_BENCH_TRIAL, runs it (an untimed warm-up trial first if asked) and sends the outcome
// to the parent over IPC, then exits whatever the trial left open.
import type { Workload } from './harness.ts';
import { type TrialOutcome, trialInProcess } from './trial-outcome.ts';

const { module, workload, subject, warmup } = JSON.parse(process.env.FACTLINE_BENCH_TRIAL ?? '{}') as {
  module: string;
  workload: string;
  subject: string;
  warmup: boolean;
};
const send = (outcome: TrialOutcome) =>
  new Promise<void>((resolve) => {
    process.send?.(outcome, () => resolve());
  });

const { workloads } = (await import(module)) as { workloads: Workload[] };
const found = workloads.find((w) => w.name === workload)?.subjects.find((s) => s.name === subject);
if (!found) {
  await send({ kind: 'failed', error: `no subject ${subject} in workload ${workload} of ${module}` });
} else {
  let outcome: TrialOutcome | undefined;
  if (warmup) {
    const first = await trialInProcess(found, found.timeoutMs);
    if (first.kind !== 'done') outcome = first;
  }
  await send(outcome ?? (await trialInProcess(found, found.timeoutMs)));
}
process.exit(0);
