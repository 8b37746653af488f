import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { isUpcastError, isValidationError, isWorkflowError, StorageError } from '../errors/index.ts';
import { createMessage } from '../messaging/message.ts';
import { decodeMessage } from '../schema/decode.ts';
import { createSchemaRegistry, type SchemaRegistry } from '../schema/registry.ts';
import { withSchemas } from '../schema/schema-store.ts';
import { getInMemorySnapshotStore } from '../snapshots/in-memory.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { Event, EventStore } from '../store/types.ts';
import { defineWorkflow, schedule, send } from './define.ts';
import {
  checkRecordedInputsUpcast,
  versionedFlow,
  versionedInput,
  versionedRegistries,
  versionedSeen,
} from './fixtures/versioned-flow.ts';
import { createWorkflowHandler } from './handler.ts';
import { instanceStreamId } from './instance.ts';
import { workflowEventTypes } from './records.ts';
import { messageFromSent } from './relay.ts';
import { getInMemoryTimerStore } from './timers/in-memory.ts';

const placedV2 = 'OrderPlaced {"orderId":"o1","total":30,"currency":"EUR"}';

/** One in-memory store seen by successive releases, each with its registry. */
function inMemoryReleases() {
  const stored = getInMemoryEventStore();
  const timers = getInMemoryTimerStore(stored);
  return async (schemas: SchemaRegistry) => ({ store: withSchemas(stored, schemas), timers, close: async () => {} });
}

describe('workflow inputs and schema versions (in memory)', () => {
  beforeEach(() => {
    versionedSeen.evolve = [];
    versionedSeen.decide = [];
    versionedSeen.park = false;
  });

  for (const kind of ['message', 'event'] as const) {
    it(`gives evolve a recorded input, and decide a live one, at the current version (${kind} types)`, () =>
      checkRecordedInputsUpcast(kind, inMemoryReleases()));
  }

  it('upcasts the inputs after a snapshot; the snapshot is used as it is', async () => {
    const schemas = versionedRegistries('message');
    const stored = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const onError = (error: unknown) => assert.fail(String(error));
    const writing = createWorkflowHandler(versionedFlow, {
      store: withSchemas(stored, schemas.v1),
      snapshots: { store: snapshots, version: 1, every: 1, onError },
    });
    await writing.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }));
    const reading = { store: snapshots, version: 1, onError };
    const release1 = createWorkflowHandler(versionedFlow, {
      store: withSchemas(stored, schemas.v1),
      snapshots: reading,
    });
    await release1.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }));
    await release1.handle(versionedInput('message', 'Paid', { orderId: 'o1' }));
    versionedSeen.evolve = [];
    const release2 = createWorkflowHandler(versionedFlow, {
      store: withSchemas(stored, schemas.v2),
      snapshots: reading,
    });
    // The second OrderPlaced (a new id) is in the tail, after the snapshot of the first.
    await release2.handle(versionedInput('message', 'Paid', { orderId: 'o1' }));
    assert.deepEqual(versionedSeen.evolve, [placedV2, 'Paid {"orderId":"o1"}']);
  });

  it('decides a parked input and the inputs kept since at their current versions when retried', async () => {
    const schemas = versionedRegistries('message');
    const stored = getInMemoryEventStore();
    const release1 = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.v1) });
    await release1.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }));
    versionedSeen.park = true;
    assert.equal(await release1.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), 'parked');
    assert.equal(
      await release1.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 7 })),
      'deferred',
    );
    versionedSeen.park = false;

    const broken = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.broken) });
    const before = (await stored.readStream('versioned-o1')).version;
    const error = await broken.parked.retry('o1').then(
      () => assert.fail('the retry should fail'),
      (e: unknown) => e,
    );
    assert.ok(isWorkflowError(error) && isUpcastError(error.cause), String(error));
    assert.equal((await stored.readStream('versioned-o1')).version, before, 'nothing appended');

    versionedSeen.decide = [];
    const release2 = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.v2) });
    assert.equal(await release2.parked.retry('o1'), 'resumed');
    assert.deepEqual(versionedSeen.decide, [
      'Paid {"orderId":"o1"}',
      'OrderPlaced {"orderId":"o1","total":7,"currency":"EUR"}',
    ]);
  });

  it('lists every parked instance when one cannot be loaded, that one with the reason', async () => {
    const schemas = versionedRegistries('message');
    const stored = getInMemoryEventStore();
    const release1 = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.v1) });
    const release2 = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.v2) });
    await release1.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }));
    await release2.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o2', total: 5, currency: 'EUR' }));
    versionedSeen.park = true;
    assert.equal(await release1.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), 'parked');
    assert.equal(await release2.handle(versionedInput('message', 'Paid', { orderId: 'o2' })), 'parked');
    assert.equal(
      await release2.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 7 })),
      'deferred',
    );
    versionedSeen.park = false;

    // o1's OrderPlaced was recorded at version 1, which this release's upcaster fails on; o2's at version 2.
    const broken = createWorkflowHandler(versionedFlow, { store: withSchemas(stored, schemas.broken) });
    const listed = await broken.parked.list();
    assert.deepEqual(
      listed.map((parked) => [parked.instanceId, parked.input.type, parked.pending, parked.unreadable !== undefined]),
      [
        ['o1', 'Paid', 1, true],
        ['o2', 'Paid', 0, false],
      ],
    );
    const [unreadable] = listed;
    assert.equal(unreadable?.error.message, 'parked by the test', 'the error it parked on');
    assert.equal(unreadable?.unreadable?.name, 'WorkflowError');
    assert.match(
      unreadable?.unreadable?.message ?? '',
      /its input 'OrderPlaced' .* cannot be read: .*no currency for you/,
    );

    // The operator gives it up: cancel ends it without loading it, and refuses a second time.
    await broken.parked.cancel('o1', 'given up');
    assert.deepEqual(
      (await broken.parked.list()).map((parked) => parked.instanceId),
      ['o2'],
    );
    const { events } = await stored.readStream('versioned-o1');
    assert.deepEqual(events.at(-1)?.data, { reason: 'given up' });
    await assert.rejects(broken.parked.cancel('o1'), (e) => isWorkflowError(e) && /cancelled already/.test(e.message));
    assert.equal(await broken.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), 'after-end');
  });

  it('cancels an instance with a record of a shape its type never has', async () => {
    const store = getInMemoryEventStore();
    const handler = createWorkflowHandler(versionedFlow, { store });
    await handler.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }));
    // A record written by a bug or by hand: an input without its message.
    await store.append('versioned-o1', [{ type: '$workflow.input', data: { received: 'garbage' } }]);
    await assert.rejects(handler.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), (e) =>
      /record #\d+ \(\$workflow\.input, position \d+\)/.test(String(e)),
    );
    await handler.parked.cancel('o1');
    const { events } = await store.readStream('versioned-o1');
    assert.equal(events.at(-1)?.type, '$workflow.cancelled');
    // Ended: its later inputs are dropped as any ended instance's are, not failed on the record again.
    assert.equal(await handler.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), 'after-end');
    await assert.rejects(handler.parked.cancel('o1'), (e) => isWorkflowError(e) && /cancelled already/.test(e.message));
    await assert.rejects(handler.parked.cancel('o2'), (e) => isWorkflowError(e) && /no such instance/.test(e.message));
  });

  it('cancels an instance whose read fails on a row the store cannot decode, not one whose store is busy', async () => {
    const store = getInMemoryEventStore();
    await createWorkflowHandler(versionedFlow, { store }).handle(
      versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 30 }),
    );
    let readFails = new StorageError('SQLite failed: Unexpected token \'o\', "{"message": oops" is not valid JSON');
    // A row edited by hand into no JSON: every read of the stream's events fails, its version still reads.
    const corrupt: EventStore = { ...store, readStream: () => Promise.reject(readFails) };
    const handler = createWorkflowHandler(versionedFlow, { store: corrupt });
    await handler.parked.cancel('o1', 'given up');
    const { events } = await store.readStream('versioned-o1');
    assert.deepEqual([events.at(-1)?.type, events.at(-1)?.data], ['$workflow.cancelled', { reason: 'given up' }]);
    // A store that may answer later is no reason to give an instance up blind.
    await createWorkflowHandler(versionedFlow, { store }).handle(
      versionedInput('message', 'OrderPlaced', { orderId: 'o2', total: 30 }),
    );
    const before = (await store.readStream('versioned-o2')).version;
    readFails = new StorageError('SQLite failed: database is locked', { retryable: true });
    await assert.rejects(handler.parked.cancel('o2'), (e) => e === readFails);
    assert.equal((await store.readStream('versioned-o2')).version, before, 'nothing recorded');
  });

  it('refuses a live input its upcaster fails on as a consumer would (the registry’s error), recording nothing', async () => {
    const store = getInMemoryEventStore({ schemas: versionedRegistries('message').broken });
    const handler = createWorkflowHandler(versionedFlow, { store });
    await assert.rejects(handler.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 3 })), (e) =>
      isUpcastError(e),
    );
    assert.equal(await store.streamInfo('versioned-o1'), undefined);
  });

  it('keeps inputs of types the registry does not define as they came, even with unknownTypes: error', async () => {
    const store = getInMemoryEventStore({ schemas: createSchemaRegistry([], { unknownTypes: 'error' }) });
    const timers = getInMemoryTimerStore(store);
    const handler = createWorkflowHandler(versionedFlow, { store, now: () => 0 });
    assert.equal(
      await handler.handle(versionedInput('message', 'OrderPlaced', { orderId: 'o1', total: 3 })),
      'recorded',
    );
    const [timer] = await timers.due(100_000, 10);
    assert.equal(timer?.message.schema, undefined, 'a type the registry does not define is not stamped');
    assert.equal(await handler.fireTimer(timer as NonNullable<typeof timer>), 'recorded');
    assert.equal(await handler.handle(versionedInput('message', 'Paid', { orderId: 'o1' })), 'recorded');
    assert.deepEqual(versionedSeen.evolve.slice(-2), [
      'OrderPlaced {"orderId":"o1","total":3}',
      'Remind {"orderId":"o1","note":"decided"}',
    ]);
  });

  it('a send of a type the registry defines as a message is validated and published with its version', async () => {
    // Remind is at version 2 (a note required; from version 1 its upcaster writes one).
    type Input = Event<'Start', { orderId: string; note?: string }>;
    const reminding = defineWorkflow<Record<string, never>, Input>({
      name: 'reminding',
      inputs: ['Start'],
      start: ['Start'],
      correlate: (input) => input.data.orderId,
      initialState: () => ({}),
      evolve: (state) => state,
      decide: (input) => send({ type: 'Remind', data: { orderId: input.data.orderId, note: input.data.note } }),
    });
    const schemas = versionedRegistries('message').v2;
    const store = getInMemoryEventStore({ schemas });
    const handler = createWorkflowHandler(reminding, { store, now: () => 0 });
    assert.equal(
      await handler.handle(createMessage({ type: 'Start', data: { orderId: 'o1', note: 'call' } })),
      'recorded',
    );
    const { events } = await store.readStream(instanceStreamId(reminding, 'o1'));
    const sent = events.filter((e) => e.type === workflowEventTypes.sent).map((e) => messageFromSent(e));
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.headers['factline-schema-version'], '2');
    // A consumer decoding with the registry takes it as written, not as a version 1 to upcast (note: 'from v1').
    const decoded = await decodeMessage(schemas, sent[0] as NonNullable<(typeof sent)[0]>);
    assert.deepEqual(decoded.data, { orderId: 'o1', note: 'call' });

    // Data its type's schema refuses parks the instance instead of leaving through the relay.
    assert.equal(await handler.handle(createMessage({ type: 'Start', data: { orderId: 'o2' } })), 'parked');
    const [parked] = await handler.parked.list();
    assert.match(parked?.error.message ?? '', /outputs\[0\]\.message\.data\.note/);
  });

  it('parks on the input whose schedule message does not fit its type, instead of storing a timer that cannot fire', async () => {
    // Remind is at version 2 (a note required): a decision still written for version 1 schedules it without one.
    type Input = Event<'Start', { orderId: string }> | Event<'Remind', { orderId: string; note?: string }>;
    const remindless = defineWorkflow<Record<string, never>, Input>({
      name: 'remindless',
      inputs: ['Start', 'Remind'],
      start: ['Start'],
      correlate: (input) => input.data.orderId,
      initialState: () => ({}),
      evolve: (state) => state,
      decide: (input) =>
        schedule({
          token: 'remind',
          afterMs: 1_000,
          message: { type: 'Remind', data: { orderId: input.data.orderId } },
        }),
    });
    const store = getInMemoryEventStore({ schemas: versionedRegistries('message').v2 });
    const timers = getInMemoryTimerStore(store);
    const handler = createWorkflowHandler(remindless, { store, now: () => 0 });
    assert.equal(await handler.handle(createMessage({ type: 'Start', data: { orderId: 'o1' } })), 'parked');
    assert.deepEqual(await timers.due(100_000, 10), [], 'no timer stored');
    const [parked, ...others] = await handler.parked.list();
    assert.equal(others.length, 0);
    assert.equal(parked?.input.type, 'Start');
    assert.equal(parked?.error.name, 'ValidationError');
    assert.match(parked?.error.message ?? '', /outputs\[0\]\.message\.data\.note/);
  });

  it('refuses an input whose schema version header is no version, naming it', async () => {
    const handler = createWorkflowHandler(versionedFlow, { store: getInMemoryEventStore() });
    // Only digits of a whole number >= 1 are a version: no sign, space, point, exponent or leading zero.
    for (const header of ['two', ' 1 ', '1.0', '0x1', '1e0', '01', '', '0']) {
      const message = createMessage({
        type: 'OrderPlaced',
        data: { orderId: 'o1', total: 3 },
        headers: { 'factline-schema-version': header },
      });
      await assert.rejects(
        handler.handle(message),
        (e) =>
          isValidationError(e) &&
          e.issues[0]?.path === 'message.headers.factline-schema-version' &&
          e.issues[0]?.message.includes(JSON.stringify(header)),
        JSON.stringify(header),
      );
    }
  });
});
