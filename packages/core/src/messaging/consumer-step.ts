import type { ConsumerErrorStage } from './consumer-options.ts';

/** A failure of one step of the pipeline, tagged with the step. */
export class StepFailure {
  constructor(
    readonly stage: ConsumerErrorStage,
    readonly cause: unknown,
  ) {}
}

/** `error` tagged with `stage`, unless a step tagged it already: for a step awaited in place, without `step`. */
export const stepFailure = (stage: ConsumerErrorStage, error: unknown): StepFailure =>
  error instanceof StepFailure ? error : new StepFailure(stage, error);

/** Runs one step's `work`; its failure rejects as a `StepFailure` naming `stage` (unless already tagged). */
export const step = async <T>(stage: ConsumerErrorStage, work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (error) {
    throw stepFailure(stage, error);
  }
};
