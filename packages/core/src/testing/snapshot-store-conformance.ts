import { after, describe, it } from 'node:test';
import type { SnapshotEnvironment } from './snapshots/context.ts';
import { uniqueStreamId } from './snapshots/context.ts';
import { snapshotStoreConformanceCases } from './snapshots/index.ts';

export interface SnapshotStoreConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /** A snapshot store and the event store it serves, fresh or shared; closed when each case ends. */
  createEnvironment: () => Promise<SnapshotEnvironment> | SnapshotEnvironment;
  /** Called once after the whole suite, e.g. to drop a schema. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason (e.g. a server that does not answer). */
  skip?: string | false;
}

/**
 * Registers the snapshot store contract with `node:test`: one test per case,
 * from saving and loading to `handleCommand` and the workflow handler starting
 * from snapshots on the adapter's own event store. Every snapshot store runs it against itself; the
 * cases are also exported as data (`snapshotStoreConformanceCases`).
 *
 * @example
 * testSnapshotStoreConformance({
 *   name: 'in-memory',
 *   createEnvironment: () => ({
 *     snapshots: getInMemorySnapshotStore(),
 *     events: getInMemoryEventStore(),
 *     close: () => undefined,
 *   }),
 * });
 */
export function testSnapshotStoreConformance(options: SnapshotStoreConformanceOptions): void {
  describe(`SnapshotStore conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(() => options.teardown?.());
    for (const [topic, cases] of Object.entries(snapshotStoreConformanceCases)) {
      describe(topic, () => {
        for (const conformanceCase of cases) {
          it(conformanceCase.name, async (t) => {
            const environment = await options.createEnvironment();
            try {
              const reason = conformanceCase.skip?.(environment);
              if (reason !== undefined) {
                t.skip(reason);
                return;
              }
              await conformanceCase.run({ ...environment, streamId: uniqueStreamId });
            } finally {
              await environment.close();
            }
          });
        }
      });
    }
  });
}
