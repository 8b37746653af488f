import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { EventStore } from '../store/types.ts';
import { suiteSchemas } from '../testing/schema-store/fixtures.ts';
import { testSchemaStoreConformance } from '../testing/schema-store-conformance.ts';
import { schemaSourceOf, withSchemas } from './schema-store.ts';

// In memory two stores cannot share storage: the typed one wraps the raw one, as the factory does.
testSchemaStoreConformance({
  name: 'in-memory',
  openStores: (schemas) => {
    const raw = getInMemoryEventStore();
    return { raw, store: withSchemas(raw, schemas) };
  },
});

describe('getInMemoryEventStore({ schemas })', () => {
  it('applies the registry to appends and reads', async () => {
    const store = getInMemoryEventStore({ schemas: suiteSchemas() });
    assert.ok(schemaSourceOf(store), 'the factory wraps the store');
    await assert.rejects(store.append('order-1', [{ type: 'OrderPlaced', data: {} }]), { code: 'VALIDATION' });
    assert.equal(await store.headPosition(), 0);
  });

  it('refuses a schemas option that is not a registry, and a store wrapped twice', () => {
    assert.throws(() => getInMemoryEventStore({ schemas: {} as never }), /schemas: must be a schema registry/);
    const store = getInMemoryEventStore({ schemas: suiteSchemas() });
    assert.throws(() => withSchemas(store, suiteSchemas()), /already applies a schema registry/);
  });

  it('decodes the readAll of a store not built on readAllInPages (it ignores the map)', async () => {
    const raw = getInMemoryEventStore();
    await raw.append('order-1', [{ type: 'OrderPlaced', data: { orderId: 'o-1', total: 30 } }]);
    const custom: EventStore = {
      ...raw,
      async *readAll(options) {
        yield* raw.readAll(options);
      },
    };
    const events = [];
    for await (const event of withSchemas(custom, suiteSchemas()).readAll()) events.push(event);
    assert.deepEqual(events[0]?.data, { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } });
  });

  it('without a registry the store is returned as it is', () => {
    assert.equal(schemaSourceOf(getInMemoryEventStore()), undefined);
  });
});
