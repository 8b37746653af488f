import type { ProjectionRunnerOptions } from '../runner.ts';
import type { ProjectionBackend } from '../types.ts';

/** What every part of one runner works with: the backend and the options with their defaults. */
export interface RunnerContext<Tx> {
  backend: ProjectionBackend<Tx>;
  batchSize: number;
  maxBatchSize: number;
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  idleCheckMs: number;
  /** The sleep as given (tests), or undefined: the waits (backoff, a held batch) use a timer of their own, cut short by a stop. */
  givenSleep: ((ms: number) => Promise<void>) | undefined;
  random: () => number;
  onError: ProjectionRunnerOptions['onError'];
  onSwitch: ProjectionRunnerOptions['onSwitch'];
  logger: ProjectionRunnerOptions['logger'];
}

/** The runner's options (already checked) with the defaults documented on `ProjectionRunnerOptions`. */
export function runnerContext<Tx>(backend: ProjectionBackend<Tx>, options: ProjectionRunnerOptions): RunnerContext<Tx> {
  const batchSize = options.batchSize ?? 500;
  return {
    backend,
    batchSize,
    maxBatchSize: options.maxBatchSize ?? batchSize * 10,
    maxAttempts: options.maxAttempts ?? 5,
    initialBackoffMs: options.initialBackoffMs ?? 100,
    // Never below the first delay: an `initialBackoffMs` alone above 5000 is not cut down to it.
    maxBackoffMs: options.maxBackoffMs ?? Math.max(5000, options.initialBackoffMs ?? 100),
    idleCheckMs: options.idleCheckMs ?? 1000,
    givenSleep: options.sleep,
    random: options.random ?? Math.random,
    onError: options.onError,
    onSwitch: options.onSwitch,
    logger: options.logger,
  };
}
