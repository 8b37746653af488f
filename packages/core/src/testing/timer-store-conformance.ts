import { describe, it } from 'node:test';
import { timerCases } from './timers/cases.ts';
import { type TimerEnvironment, timerWorkflow } from './timers/context.ts';

export interface TimerStoreConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /** An event store and the timer store kept from it, fresh or shared; closed when each case ends. */
  createEnvironment: () => Promise<TimerEnvironment> | TimerEnvironment;
  /** Skip the suite with this reason (e.g. a server that does not answer). */
  skip?: string | false;
}

/**
 * Registers the timer store contract with `node:test`: timers kept from the
 * instances' records (scheduled with the decision, cancelled, replaced,
 * removed when fired or when the instance ends) and, where the backend keeps
 * them, across a restart. Every timer store runs it against itself; the
 * cases are also exported as data (`timerStoreConformanceCases`).
 *
 * @example
 * testTimerStoreConformance({
 *   name: 'in-memory',
 *   createEnvironment: () => {
 *     const store = getInMemoryEventStore();
 *     return { store, timers: getInMemoryTimerStore(store), close: () => store.close() };
 *   },
 * });
 */
export function testTimerStoreConformance(options: TimerStoreConformanceOptions): void {
  describe(`TimerStore conformance: ${options.name}`, { skip: options.skip || false }, () => {
    for (const conformanceCase of timerCases) {
      it(conformanceCase.name, async (t) => {
        const environment = await options.createEnvironment();
        try {
          const reason = conformanceCase.skip?.(environment);
          if (reason !== undefined) {
            t.skip(reason);
            return;
          }
          await conformanceCase.run({
            ...environment,
            workflow: (now) => timerWorkflow(environment.store, now),
          });
        } finally {
          await environment.close();
        }
      });
    }
  });
}

export const timerStoreConformanceCases = timerCases;
