import { after, describe, it } from 'node:test';
import type { EventStore } from '../store/types.ts';
import { uniqueCategory } from './conformance/context.ts';
import { type EventStoreFactory, eventStoreConformanceCases } from './conformance/index.ts';

export interface EventStoreConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  createStore: EventStoreFactory;
  /** Called once after the whole suite, e.g. to drop a database. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason (e.g. a server that does not answer). */
  skip?: string | false;
}

/**
 * Registers the event store contract with `node:test`: one test per case.
 * Every store adapter runs it against itself; the cases are also exported as
 * data (`eventStoreConformanceCases`) for other test runners.
 *
 * @example
 * testEventStoreConformance({ name: 'in-memory', createStore: (o) => getInMemoryEventStore(o) });
 */
export function testEventStoreConformance(options: EventStoreConformanceOptions): void {
  // Each case's stores are closed when the case ends, so a server-backed adapter
  // never holds the connections of every case at once.
  const opened: EventStore[] = [];
  const createStore: EventStoreFactory = async (storeOptions) => {
    const store = await options.createStore(storeOptions);
    opened.push(store);
    return store;
  };
  const closeOpened = () => Promise.allSettled(opened.splice(0).map((s) => s.close()));
  describe(`EventStore conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await closeOpened();
      await options.teardown?.();
    });
    for (const [topic, cases] of Object.entries(eventStoreConformanceCases)) {
      describe(topic, () => {
        for (const conformanceCase of cases) {
          it(conformanceCase.name, async () => {
            try {
              const store = await createStore();
              await conformanceCase.run({
                store,
                createStore,
                streamId: (label = 's') => `${uniqueCategory(label)}-1`,
                category: uniqueCategory,
              });
            } finally {
              await closeOpened();
            }
          });
        }
      });
    }
  });
}
