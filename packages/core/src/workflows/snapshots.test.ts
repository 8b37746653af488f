import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SnapshotErrorContext } from '../commands/snapshot-options.ts';
import { isValidationError, StorageError } from '../errors/index.ts';
import { createMessage } from '../messaging/message.ts';
import { getInMemorySnapshotStore } from '../snapshots/in-memory.ts';
import type { SnapshotStore } from '../snapshots/types.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { EventStore } from '../store/types.ts';
import { defineWorkflow, send } from './define.ts';
import { type FlowState, paymentFlow } from './fixtures/payment-flow.ts';
import { createWorkflowHandler } from './handler.ts';
import { instanceStreamId, loadInstance } from './instance.ts';
import type { InstanceSnapshotData } from './snapshots.ts';
import type { PendingTimer } from './timers/types.ts';

type Errors = { error: unknown; context: SnapshotErrorContext }[];
const collect = (errors: Errors) => (error: unknown, context: SnapshotErrorContext) => errors.push({ error, context });

const placed = (orderId: string, amount = 10) => createMessage({ type: 'OrderPlaced', data: { orderId, amount } });
const reserved = (orderId: string) => createMessage({ type: 'StockReserved', data: { orderId } });

/** A tally whose state is a class instance: JSON alone would lose its method. */
class Tally {
  constructor(readonly count = 0) {}
  next(): Tally {
    return new Tally(this.count + 1);
  }
}
type Bump = { type: 'Bump'; data: { id: string } };
type Bumped = { type: 'Bumped'; data: { count: number } };
const tallyFlow = defineWorkflow<Tally, Bump, Bumped>({
  name: 'tally',
  inputs: ['Bump'],
  start: ['Bump'],
  correlate: (input) => input.data.id,
  initialState: () => new Tally(),
  evolve: (state, recorded) => (recorded.kind === 'input' ? state.next() : state),
  decide: (_input, state) => send({ type: 'Bumped', data: { count: state.next().count } }),
});

/** The payment flow's handler on in-memory stores, its clock at 1,000, a snapshot after every input. */
function snapshottingFlow() {
  const store = getInMemoryEventStore();
  const snapshots = getInMemorySnapshotStore();
  const errors: Errors = [];
  const handler = createWorkflowHandler(paymentFlow, {
    store,
    now: () => 1_000,
    snapshots: { store: snapshots, version: 1, every: 1, onError: collect(errors) },
  });
  return { store, snapshots, errors, handler };
}

/** The `nth` payment timer the flow scheduled for `orderId` (its handler's clock at 1,000), as the poller reads it. */
async function paymentTimer(store: EventStore, orderId: string, nth: number): Promise<PendingTimer> {
  const { events } = await store.readStream(`flow-${orderId}`);
  const scheduled = events.filter((e) => e.type === '$workflow.timer-scheduled')[nth];
  assert.ok(scheduled);
  return {
    timerId: scheduled.id,
    streamId: `flow-${orderId}`,
    workflow: 'flow',
    token: 'payment',
    dueAt: 1_000 + 15 * 60_000,
    message: { type: 'PaymentTimedOut', data: { orderId } },
    metadata: {},
  };
}

describe('workflow handler snapshots', () => {
  it('checks the option: unknown keys, the version, somewhere for failures, class states', () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    assert.throws(
      () =>
        createWorkflowHandler(paymentFlow, {
          store,
          snapshots: { store: snapshots, version: 1, evry: 10, onError: () => {} } as never,
        }),
      (e: unknown) =>
        isValidationError(e) &&
        e.issues[0]?.path === 'createWorkflowHandler options.snapshots.evry' &&
        /did you mean 'every'/.test(e.issues[0].message),
    );
    assert.throws(
      () => createWorkflowHandler(paymentFlow, { store, snapshots: { store: snapshots, version: 0, onError() {} } }),
      (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'createWorkflowHandler options.snapshots.version',
    );
    assert.throws(
      () => createWorkflowHandler(paymentFlow, { store, snapshots: { store: {} as SnapshotStore, version: 1 } }),
      (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'createWorkflowHandler options.snapshots.store',
    );
    assert.throws(
      () => createWorkflowHandler(paymentFlow, { store, snapshots: { store: snapshots, version: 1 } }),
      (e: unknown) =>
        isValidationError(e) &&
        e.issues[0]?.path === 'createWorkflowHandler options.snapshots.onError' &&
        /no logger/.test(e.issues[0].message),
    );
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    assert.doesNotThrow(() =>
      createWorkflowHandler(paymentFlow, { store, logger, snapshots: { store: snapshots, version: 1 } }),
    );
    assert.throws(
      () => createWorkflowHandler(tallyFlow, { store, logger, snapshots: { store: snapshots, version: 1 } }),
      (e: unknown) =>
        isValidationError(e) &&
        e.issues[0]?.path === 'createWorkflowHandler options.snapshots.toSnapshot' &&
        /a Tally instance/.test(e.issues[0].message),
    );
  });

  it('a class state goes through toSnapshot and fromSnapshot, and comes back a class instance', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const errors: Errors = [];
    const handler = createWorkflowHandler(tallyFlow, {
      store,
      snapshots: {
        store: snapshots,
        version: 1,
        every: 4,
        toSnapshot: (state) => ({ count: state.count }),
        fromSnapshot: (data) => new Tally((data as { count: number }).count),
        onError: collect(errors),
      },
    });
    for (let i = 0; i < 3; i++) await handler.handle(createMessage({ type: 'Bump', data: { id: 't' } }));
    const saved = await snapshots.load<InstanceSnapshotData>('tally-t', { name: 'workflow' });
    assert.equal(saved?.version, 4, 'written when the stream crossed 4 (after the second input)');
    assert.deepEqual(saved?.state.state, { count: 2 });
    // The third input was decided on the restored Tally: `state.next()` would throw on a plain object.
    const { events } = await store.readStream('tally-t');
    assert.deepEqual(events[5]?.data, { message: { type: 'Bumped', data: { count: 3 } } });
    assert.deepEqual(errors, []);
  });

  it('a policy function sees the state after the input; its failure is reported and the input stands', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const errors: Errors = [];
    const seen: [string, number, number, number][] = [];
    const handler = createWorkflowHandler(paymentFlow, {
      store,
      snapshots: {
        store: snapshots,
        version: 1,
        every: ({ state, version, newEvents, eventsSinceSnapshot }) => {
          seen.push([state.status, version, newEvents.length, eventsSinceSnapshot]);
          if (state.status === 'done') throw new Error('policy bug');
          return state.status === 'charging';
        },
        onError: collect(errors),
      },
    });
    assert.equal(await handler.handle(placed('p')), 'recorded');
    assert.equal(await handler.handle(reserved('p')), 'recorded');
    assert.equal(
      await handler.handle(createMessage({ type: 'PaymentFailed', data: { orderId: 'p', reason: 'x' } })),
      'recorded',
    );
    assert.deepEqual(seen, [
      ['reserving', 2, 2, 2],
      ['charging', 5, 3, 5],
      ['done', 9, 4, 4],
    ]);
    const saved = await snapshots.load<{ state: FlowState }>('flow-p', { name: 'workflow' });
    assert.equal(saved?.version, 5);
    assert.equal(saved?.state.state.steps.length, 1, 'the compensation step recorded by evolve is kept');
    assert.deepEqual(
      errors.map((e) => [e.context.operation, (e.error as Error).message]),
      [['policy', 'policy bug']],
    );
    assert.equal((await store.readStream('flow-p')).version, 9);
  });

  it('a snapshot store that fails to load, or a snapshot of another shape, is reported and the instance folded in full', async () => {
    const store = getInMemoryEventStore();
    const inner = getInMemorySnapshotStore();
    let loadFails = true;
    const snapshots: SnapshotStore = {
      load: (streamId, options) =>
        loadFails ? Promise.reject(new StorageError('snapshots offline')) : inner.load(streamId, options),
      save: (snapshot) => inner.save(snapshot),
      delete: (streamId, options) => inner.delete(streamId, options),
    };
    const errors: Errors = [];
    const handler = createWorkflowHandler(paymentFlow, {
      store,
      snapshots: { store: snapshots, version: 1, onError: collect(errors) },
    });
    await handler.handle(placed('f', 25));
    const stock = reserved('f');
    assert.equal(await handler.handle(stock), 'recorded');
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e.context.operation === 'load' && e.context.name === 'workflow'));

    // A snapshot with no seen ids (written by something else) is not trusted.
    loadFails = false;
    errors.length = 0;
    const { events, version } = await store.readStream(instanceStreamId(paymentFlow, 'f'));
    await inner.save({
      streamId: 'flow-f',
      name: 'workflow',
      version,
      lastEventId: events[events.length - 1]?.id as string,
      snapshotVersion: 1,
      state: { state: { status: 'new', amount: 0, starts: 0, steps: [] }, status: 'active' },
    });
    assert.equal(await handler.handle(stock), 'duplicate', 'folded from the events: the input was seen');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.context.operation, 'load');
    assert.ok(isValidationError(errors[0]?.error));
    assert.equal(errors[0]?.error.issues[0]?.path, 'snapshot.state.seen');
  });

  it('without `every` snapshots are only read: one written elsewhere is used, none is written', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const errors: Errors = [];
    const writer = createWorkflowHandler(paymentFlow, {
      store,
      snapshots: { store: snapshots, version: 1, every: 1, onError: collect(errors) },
    });
    const reader = createWorkflowHandler(paymentFlow, {
      store,
      snapshots: { store: snapshots, version: 1, onError: collect(errors) },
    });
    await writer.handle(placed('r', 40));
    assert.equal((await snapshots.load('flow-r', { name: 'workflow' }))?.version, 2);
    assert.equal(await reader.handle(reserved('r')), 'recorded');
    assert.equal((await snapshots.load('flow-r', { name: 'workflow' }))?.version, 2, 'the reader wrote none');
    const full = await loadInstance(store, paymentFlow, 'flow-r');
    assert.equal(full.state.status, 'charging');
    const { events } = await store.readStream('flow-r');
    assert.deepEqual(events[3]?.data, { message: { type: 'ChargePayment', data: { orderId: 'r', amount: 40 } } });
    assert.deepEqual(errors, []);
  });

  it('timers: a fired timer is decided on the snapshot state; fired again it is a duplicate, another is dropped', async () => {
    const { store, snapshots, errors, handler } = snapshottingFlow();
    await handler.handle(placed('t', 12));
    await handler.handle(reserved('t'));
    const timer = await paymentTimer(store, 't', 0);
    assert.equal(await handler.fireTimer(timer), 'recorded');
    const saved = await snapshots.load<InstanceSnapshotData>('flow-t', { name: 'workflow' });
    assert.equal(saved?.state.status, 'completed', 'the timeout compensated and completed the instance');
    assert.equal(saved?.version, (await store.readStream('flow-t')).version);
    // Fired again (a second poller): a duplicate by its derived input id, known from the snapshot's seen ids.
    assert.equal(await handler.fireTimer(timer), 'duplicate');
    // Another timer of the completed instance is dropped, as the snapshot's status says.
    assert.equal(await handler.fireTimer({ ...timer, timerId: 'another' }), 'timer-dropped');
    assert.deepEqual(handler.stats()['timer-dropped'], 1);
    assert.deepEqual(errors, []);
  });

  it('timers: the pending timers come from the snapshot, and one without them is passed over unreported', async () => {
    const { store, snapshots, errors, handler } = snapshottingFlow();
    await handler.handle(placed('t', 12));
    await handler.handle(reserved('t'));
    const first = await paymentTimer(store, 't', 0);
    let saved = await snapshots.load<InstanceSnapshotData>('flow-t', { name: 'workflow' });
    assert.deepEqual(saved?.state.timers, [['payment', first.timerId]]);
    // Scheduled again (the same token): the snapshot holds the newer timer only.
    await handler.handle(createMessage({ type: 'StockReserved', data: { orderId: 't' } }));
    const second = await paymentTimer(store, 't', 1);
    saved = await snapshots.load<InstanceSnapshotData>('flow-t', { name: 'workflow' });
    assert.deepEqual(saved?.state.timers, [['payment', second.timerId]]);
    assert.equal(await handler.fireTimer(first), 'timer-dropped', 'the replaced timer, told by the snapshot');
    assert.equal(await handler.fireTimer(second), 'recorded');

    // A snapshot of the shape written before the pending timers were kept: not used, not reported, replaced.
    await handler.handle(placed('u', 5));
    await handler.handle(reserved('u'));
    const pending = await paymentTimer(store, 'u', 0);
    const current = await snapshots.load<InstanceSnapshotData>('flow-u', { name: 'workflow' });
    assert.ok(current);
    const { timers: _timers, ...older } = current.state;
    await snapshots.delete('flow-u', { name: 'workflow' });
    await snapshots.save({ ...current, state: { ...older, status: 'completed' } });
    // Trusted, the older snapshot would drop the timer as after the end; folded from the events, it fires.
    assert.equal(await handler.fireTimer(pending), 'recorded');
    saved = await snapshots.load<InstanceSnapshotData>('flow-u', { name: 'workflow' });
    assert.deepEqual(saved?.state.timers, [], 'the next snapshot has them (none pending after the firing)');
    assert.deepEqual(errors, []);
  });

  it('an onError that throws changes nothing', async () => {
    const store = getInMemoryEventStore();
    const handler = createWorkflowHandler(paymentFlow, {
      store,
      snapshots: {
        store: { ...getInMemorySnapshotStore(), save: () => Promise.reject(new StorageError('full')) },
        version: 1,
        every: 1,
        onError: () => {
          throw new Error('hook bug');
        },
      },
    });
    assert.equal(await handler.handle(placed('h')), 'recorded');
    assert.equal((await store.readStream('flow-h')).version, 2);
  });
});
