import { describe, it, after as suiteAfter } from 'node:test';
import { createProjectionRunner, type ProjectionRunner } from '../projections/runner.ts';
import type { ProjectionBackend } from '../projections/types.ts';
import { uniqueCategory } from './conformance/context.ts';
import {
  type ProjectionConformanceCase,
  type ProjectionEnvironment,
  projectionConformanceCases,
} from './projections/index.ts';

export {
  type CaseNames,
  type CounterModel,
  type CounterSnapshot,
  type ProjectionCaseContext,
  type ProjectionConformanceCase,
  type ProjectionEnvironment,
  projectionConformanceCases,
} from './projections/index.ts';

export interface ProjectionConformanceOptions<Tx> {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /**
   * Called once per case. It may return a fresh store each time or the same
   * one: every case uses projection names, categories and event types of its own.
   */
  createEnvironment(): Promise<ProjectionEnvironment<Tx>>;
  /** Called once after the whole suite. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason. */
  skip?: string | false;
}

/**
 * Registers the projection runtime contract with `node:test`: one test per
 * case, each on an environment from `createEnvironment`. Every adapter with a
 * projection backend runs it; the cases are also exported as data
 * (`projectionConformanceCases`) for other test runners.
 *
 * @example
 * testProjectionConformance({ name: 'sqlite (file)', createEnvironment: async () => ({ store, backend, model, close }) });
 */
export function testProjectionConformance<Tx>(options: ProjectionConformanceOptions<Tx>): void {
  describe(`Projection conformance: ${options.name}`, { skip: options.skip || false }, () => {
    suiteAfter(async () => {
      await options.teardown?.();
    });
    for (const [topic, cases] of Object.entries(projectionConformanceCases)) {
      describe(topic, () => {
        for (const conformanceCase of cases) register(conformanceCase);
      });
    }
  });

  function register(conformanceCase: ProjectionConformanceCase): void {
    it(conformanceCase.name, { timeout: 60_000 }, async (t) => {
      const environment = await options.createEnvironment();
      const missing = conformanceCase.requires?.(environment.backend as ProjectionBackend<unknown>);
      if (missing) {
        await environment.close();
        t.skip(missing);
        return;
      }
      const runners: ProjectionRunner[] = [];
      try {
        await conformanceCase.run<Tx>({
          store: environment.store,
          backend: environment.backend,
          model: environment.model,
          createRunner(projections, runnerOptions) {
            const runner = createProjectionRunner(environment.backend, projections, {
              idleCheckMs: 50,
              initialBackoffMs: 1,
              maxBackoffMs: 5,
              ...runnerOptions,
            });
            runners.push(runner);
            return runner;
          },
          names(label = 'p') {
            const category = uniqueCategory(label);
            return { projection: category, category, type: `${category}.Counted`, otherType: `${category}.Other` };
          },
        });
      } finally {
        await Promise.allSettled(runners.map((runner) => runner.stop()));
        await environment.close();
      }
    });
  }
}
