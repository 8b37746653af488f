import { after, describe, it } from 'node:test';
import type { SchemaRegistry } from '../schema/registry.ts';
import type { EventStore } from '../store/types.ts';
import { uniqueCategory } from './conformance/context.ts';
import { type SchemaStores, schemaStoreCases } from './schema-store/cases.ts';
import { suiteSchemas } from './schema-store/fixtures.ts';

export type { SchemaStoreCase, SchemaStoreCaseContext, SchemaStores } from './schema-store/cases.ts';
export { schemaStoreCases };

export interface SchemaStoreConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite'`. */
  name: string;
  /**
   * Two stores on the same storage: one without a registry, one opened with
   * `schemas` the way users open it (the factory's `schemas` option).
   */
  openStores(schemas: SchemaRegistry): Promise<SchemaStores> | SchemaStores;
  /** Called once after the whole suite, e.g. to drop a database. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason (e.g. a server that does not answer). */
  skip?: string | false;
}

/**
 * Registers the schema-evolution contract of a store with `node:test`: a v1
 * event written without the registry reads as v3 through `readStream`,
 * `readAll` and `handleCommand`; appends are validated (asynchronous
 * validators awaited), all or nothing, and stamped; unknown types, newer
 * versions, failing upcasters and read validation behave as documented.
 *
 * @example
 * testSchemaStoreConformance({
 *   name: 'sqlite',
 *   openStores: (schemas) => ({ raw: getSqliteEventStore({ path }), store: getSqliteEventStore({ path, schemas }) }),
 * });
 */
export function testSchemaStoreConformance(options: SchemaStoreConformanceOptions): void {
  const opened: EventStore[] = [];
  const closeOpened = () => Promise.allSettled(opened.splice(0).map((s) => s.close()));
  describe(`Schema evolution conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await closeOpened();
      await options.teardown?.();
    });
    for (const schemaCase of schemaStoreCases) {
      it(schemaCase.name, async () => {
        try {
          await schemaCase.run({
            open: async (schemas = suiteSchemas()) => {
              const stores = await options.openStores(schemas);
              opened.push(stores.raw, stores.store);
              return stores;
            },
            streamId: (label = 's') => `${uniqueCategory(label)}-1`,
          });
        } finally {
          await closeOpened();
        }
      });
    }
  });
}
