import assert from 'node:assert/strict';
import type { Decider } from '../../commands/decider.ts';
import { handleCommand } from '../../commands/handle-command.ts';
import type { SchemaError, UpcastError, ValidationError } from '../../errors/index.ts';
import type { SchemaRegistry } from '../../schema/registry.ts';
import type { EventStore, RecordedEvent } from '../../store/types.ts';
import { collectAll, rejectsWithCode } from '../conformance/context.ts';
import { type PlacedV3, type SuiteEvent, suiteSchemas } from './fixtures.ts';

/** Two stores on the same storage: `raw` reads and writes as stored, `store` applies `schemas` (the adapter's way). */
export interface SchemaStores {
  raw: EventStore;
  store: EventStore;
}

export interface SchemaStoreCaseContext {
  /** Opens both stores with `schemas` (default: the suite's registry). The suite closes them. */
  open(schemas?: SchemaRegistry): Promise<SchemaStores>;
  /** A stream id unique to this run, in a category unique to it. */
  streamId(label?: string): string;
}

export interface SchemaStoreCase {
  name: string;
  run(context: SchemaStoreCaseContext): Promise<void>;
}

const v1 = { orderId: 'o-1', total: 30 };
const v3 = (value: number, currency = 'EUR'): PlacedV3 => ({ orderId: 'o-1', amount: { value, currency } });
const categoryOf = (streamId: string) => streamId.slice(0, streamId.indexOf('-'));

/** Every path of a `ValidationError`, sorted. */
const pathsOf = (error: ValidationError) => error.issues.map((issue) => issue.path).sort();

export const schemaStoreCases: readonly SchemaStoreCase[] = [
  {
    name: 'readStream upcasts a v1 and a v2 event to v3; the stored payload is not rewritten',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      await raw.append(id, [
        { type: 'OrderPlaced', data: v1 },
        { type: 'OrderPlaced', data: { ...v1, currency: 'USD' }, schemaVersion: 2 },
      ]);
      const { events } = await store.readStream<SuiteEvent>(id);
      assert.deepEqual(
        events.map((e) => [e.schemaVersion, e.data]),
        [
          [3, v3(30)],
          [3, v3(30, 'USD')],
        ],
      );
      const stored = await raw.readStream(id);
      assert.deepEqual(stored.events[0]?.data, v1);
      assert.equal(stored.events[0]?.schemaVersion, 1);
    },
  },
  {
    name: 'readAll upcasts every event it yields',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      await raw.append(id, [
        { type: 'OrderPlaced', data: v1 },
        { type: 'Other', data: { n: 1 } },
      ]);
      const events = await collectAll(store, { categories: [categoryOf(id)] });
      assert.deepEqual(
        events.map((e) => [e.type, e.schemaVersion, e.data]),
        [
          ['OrderPlaced', 3, v3(30)],
          ['Other', 1, { n: 1 }],
        ],
      );
    },
  },
  {
    name: 'append stamps the current schema version and stores the schema output',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      const result = await store.append(id, [{ type: 'OrderPlaced', data: { ...v3(12), extra: 'dropped' } }]);
      assert.equal(result.events[0]?.schemaVersion, 3);
      const stored = (await raw.readStream(id)).events[0] as RecordedEvent;
      assert.equal(stored.schemaVersion, 3);
      assert.deepEqual(stored.data, v3(12));
    },
  },
  {
    name: 'an invalid append is one ValidationError naming every issue of every event (async validators awaited); nothing is written',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      const head = await raw.headPosition();
      const error = await rejectsWithCode<ValidationError>(
        store.append(id, [
          { type: 'OrderPlaced', data: v3(1) },
          { type: 'OrderPlaced', data: { orderId: 7, amount: { value: -1, currency: 'EUR' } } },
          { type: 'ItemReserved', data: { sku: 'nope' } },
        ]),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(error), ['events[1].data.amount', 'events[1].data.orderId', 'events[2].data.sku']);
      assert.match(error.message, /unknown sku/);
      assert.equal(await raw.headPosition(), head, 'nothing may be written');
      assert.equal((await raw.readStream(id)).exists, false);
      await store.append(id, [{ type: 'ItemReserved', data: { sku: 'SKU-1' } }]);
      assert.equal((await raw.readStream(id)).version, 1, 'a valid event passes the async validator');
    },
  },
  {
    name: 'an append setting another schemaVersion than the current one for a defined type is refused',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      const error = await rejectsWithCode<ValidationError>(
        store.append(id, [{ type: 'OrderPlaced', data: v3(1), schemaVersion: 1 }]),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(error), ['events[0].schemaVersion']);
      assert.equal((await raw.readStream(id)).exists, false);
      await store.append(id, [{ type: 'OrderPlaced', data: v3(1), schemaVersion: 3 }]);
    },
  },
  {
    name: 'close() finishes appends still being validated (async validators) and refuses the ones after it',
    async run({ open, streamId }) {
      const { store } = await open();
      const id = streamId('reserved');
      const pending = store.append(id, [{ type: 'ItemReserved', data: { sku: 'SKU-1' } }]);
      const closed = store.close();
      assert.equal((await pending).version, 1, 'the append made before close() is stored');
      await closed;
      await rejectsWithCode(store.append(id, [{ type: 'ItemReserved', data: { sku: 'SKU-2' } }]), 'STORE_CLOSED');
    },
  },
  {
    name: 'a re-sent append (same ids) is still idempotent',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      const events = [{ id: `${id}-e1`, type: 'OrderPlaced', data: v3(5) }];
      await store.append(id, events, { expectedVersion: 'no-stream' });
      await store.append(id, events, { expectedVersion: 'no-stream' });
      assert.equal((await raw.readStream(id)).version, 1);
    },
  },
  {
    name: 'an event stored at a version newer than the current one fails the read with SchemaError',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      await raw.append(id, [{ type: 'OrderPlaced', data: v3(1), schemaVersion: 4 }]);
      const error = await rejectsWithCode<SchemaError>(store.readStream(id), 'SCHEMA');
      assert.equal(error.type, 'OrderPlaced');
      assert.equal(error.schemaVersion, 4);
    },
  },
  {
    name: 'a failing upcaster fails the read with UpcastError naming the type, the version and the cause',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('garbled');
      await raw.append(id, [{ type: 'Garbled', data: { text: 'x' } }]);
      const error = await rejectsWithCode<UpcastError>(collectAll(store, { categories: [categoryOf(id)] }), 'UPCAST');
      assert.equal(error.type, 'Garbled');
      assert.equal(error.fromVersion, 1);
      assert.equal((error.cause as Error).message, 'cannot read version 1');
    },
  },
  {
    name: "unknownTypes 'pass' (default): a type not defined is written and read as it is",
    async run({ open, streamId }) {
      const { store } = await open();
      const id = streamId('mystery');
      await store.append(id, [{ type: 'Mystery', data: { anything: true }, schemaVersion: 7 }]);
      const { events } = await store.readStream(id);
      assert.deepEqual([events[0]?.schemaVersion, events[0]?.data], [7, { anything: true }]);
    },
  },
  {
    name: "unknownTypes 'error': a type not defined is refused on append and fails the read",
    async run({ open, streamId }) {
      const { raw, store } = await open(suiteSchemas({ unknownTypes: 'error' }));
      const id = streamId('mystery');
      const error = await rejectsWithCode<ValidationError>(
        store.append(id, [{ type: 'Mystery', data: {} }]),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(error), ['events[0].type']);
      await raw.append(id, [{ type: 'Mystery', data: {} }]);
      const read = await rejectsWithCode<SchemaError>(store.readStream(id), 'SCHEMA');
      assert.equal(read.type, 'Mystery');
    },
  },
  {
    name: 'validateOnRead: a stored event that does not fit the current schema fails the read',
    async run({ open, streamId }) {
      const { raw, store } = await open(suiteSchemas({ validateOnRead: true }));
      const id = streamId('placed');
      await raw.append(id, [{ type: 'OrderPlaced', data: v1 }]);
      assert.deepEqual((await store.readStream(id)).events[0]?.data, v3(30), 'an upcast event that fits reads');
      await raw.append(id, [{ type: 'OrderPlaced', data: { orderId: 'o-1' }, schemaVersion: 3 }]);
      const error = await rejectsWithCode<ValidationError>(store.readStream(id), 'VALIDATION');
      assert.deepEqual(pathsOf(error), ['data.amount']);
    },
  },
  {
    name: 'handleCommand folds upcast events and appends stamped ones',
    async run({ open, streamId }) {
      const { raw, store } = await open();
      const id = streamId('placed');
      await raw.append(id, [{ type: 'OrderPlaced', data: v1 }]);
      const decider: Decider<number, { add: number }, SuiteEvent> = {
        initialState: () => 0,
        evolve: (total, event) => (event.type === 'OrderPlaced' ? total + event.data.amount.value : total),
        decide: (command) => [{ type: 'OrderPlaced', data: v3(command.add) }],
      };
      const result = await handleCommand(store, id, { add: 5 }, decider);
      assert.equal(result.state, 35, 'the v1 event was folded as v3');
      assert.equal(result.newEvents[0]?.schemaVersion, 3);
    },
  },
];
