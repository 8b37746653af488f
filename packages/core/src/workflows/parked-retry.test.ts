import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NonRetryableError } from '../errors/index.ts';
import { createMessage } from '../messaging/message.ts';
import { getInMemorySnapshotStore } from '../snapshots/in-memory.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { Event } from '../store/types.ts';
import { createWorkflowScenario } from '../testing/workflow-scenario.ts';
import { cancelTimer, complete, defineWorkflow, schedule, send } from './define.ts';
import { createWorkflowHandler } from './handler.ts';
import type { WorkflowOutput } from './types.ts';

type Input =
  | Event<'OrderPlaced', { orderId: string }>
  | Event<'PaymentSucceeded', { orderId: string }>
  | Event<'Noted', { orderId: string; amount: number }>
  | Event<'DeadlinePassed', { orderId: string }>;
type Output =
  | Event<'ChargeCard', { orderId: string }>
  | Event<'ShipOrder', { orderId: string }>
  | Event<'Audit', { orderId: string; amount: number }>
  | Event<'RefundAndCancel', { orderId: string }>;

/**
 * Switched by the tests: while `on`, `PaymentSucceeded` fails for good (a bug, fixed before the retry);
 * while `noted`, `Noted` does.
 */
const bug = { on: true, noted: false };

/** A checkout whose payment reschedules (or cancels) the deadline its start set. */
const checkout = (onPaid: 'reschedule' | 'cancel') =>
  defineWorkflow<{ paid: boolean }, Input, Output>({
    name: `checkout_${onPaid}`,
    inputs: ['OrderPlaced', 'PaymentSucceeded', 'Noted', 'DeadlinePassed'],
    start: ['OrderPlaced'],
    correlate: (input) => input.data.orderId,
    initialState: () => ({ paid: false }),
    evolve: (state, recorded) =>
      recorded.kind === 'input' && recorded.message.type === 'PaymentSucceeded' ? { paid: true } : state,
    decide: (input): WorkflowOutput<Output, Input>[] => {
      const { orderId } = input.data;
      switch (input.type) {
        case 'OrderPlaced':
          return [
            send({ type: 'ChargeCard', data: { orderId } }),
            schedule({ token: 'deadline', afterMs: 60_000, message: { type: 'DeadlinePassed', data: { orderId } } }),
          ];
        case 'PaymentSucceeded':
          if (bug.on) throw new NonRetryableError('a bug in the payment step');
          return [
            send({ type: 'ShipOrder', data: { orderId } }),
            onPaid === 'cancel'
              ? cancelTimer('deadline')
              : schedule({
                  token: 'deadline',
                  afterMs: 3_600_000,
                  message: { type: 'DeadlinePassed', data: { orderId } },
                }),
          ];
        case 'Noted':
          if (bug.noted) throw new NonRetryableError('a bug in the audit step');
          // A bug of its own: a negative amount gives NaN, which JSON cannot carry.
          return [send({ type: 'Audit', data: { orderId, amount: Math.sqrt(input.data.amount) } })];
        case 'DeadlinePassed':
          return [send({ type: 'RefundAndCancel', data: { orderId } }), complete()];
      }
    },
  });

describe('parked.retry', () => {
  for (const onPaid of ['reschedule', 'cancel'] as const) {
    it(`drops a kept timer firing whose timer a retried decision ${onPaid === 'cancel' ? 'cancelled' : 'replaced'}, as a live firing is`, async () => {
      bug.on = true;
      const workflow = checkout(onPaid);
      const scenario = createWorkflowScenario({ workflows: [workflow] });
      await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o1' } });
      await scenario.advance(10_000);
      await scenario.send({ type: 'PaymentSucceeded', data: { orderId: 'o1' } });
      assert.equal((await scenario.instance(workflow, 'o1')).status, 'parked');
      // The deadline fires while the instance is parked: kept for the retry.
      await scenario.advance(60_000);
      assert.equal((await scenario.instance(workflow, 'o1')).parked?.pending.length, 1);

      bug.on = false;
      const handler = scenario.workflows.get(workflow.name);
      assert.equal(await handler?.parked.retry('o1'), 'resumed');
      await scenario.drain();
      assert.deepEqual(
        scenario.deliveredTypes().filter((t) => t !== 'OrderPlaced' && t !== 'PaymentSucceeded'),
        ['ChargeCard', 'ShipOrder'],
      );
      const instance = await scenario.instance(workflow, 'o1');
      assert.equal(instance.status, 'active', 'not completed by the stale deadline');
      assert.equal(instance.timers.has('deadline'), onPaid === 'reschedule');
    });

    it(`drops it at a later retry too, when the retry that ${onPaid === 'cancel' ? 'cancelled' : 'replaced'} its timer parked again before it`, async () => {
      bug.on = true;
      bug.noted = true;
      const workflow = checkout(onPaid);
      const scenario = createWorkflowScenario({ workflows: [workflow] });
      await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o1' } });
      await scenario.send({ type: 'PaymentSucceeded', data: { orderId: 'o1' } });
      await scenario.send({ type: 'Noted', data: { orderId: 'o1', amount: 4 } });
      await scenario.advance(60_000);
      assert.equal((await scenario.instance(workflow, 'o1')).parked?.pending.length, 2);

      bug.on = false;
      const handler = scenario.workflows.get(workflow.name);
      assert.equal(await handler?.parked.retry('o1'), 'parked', 'the payment goes through, the audit parks again');
      bug.noted = false;
      assert.equal(await handler?.parked.retry('o1'), 'resumed');
      await scenario.drain();
      assert.deepEqual(
        scenario.deliveredTypes().filter((t) => ['ShipOrder', 'Audit', 'RefundAndCancel'].includes(t)),
        ['ShipOrder', 'Audit'],
        'the old deadline does not refund a paid order',
      );
      const instance = await scenario.instance(workflow, 'o1');
      assert.equal(instance.status, 'active');
      assert.equal(instance.timers.has('deadline'), onPaid === 'reschedule');
    });
  }

  it('a kept input whose decision cannot be recorded (data JSON cannot carry) parks the instance on it; the retry never gets stuck', async () => {
    bug.on = true;
    const workflow = checkout('cancel');
    const scenario = createWorkflowScenario({ workflows: [workflow] });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o2' } });
    await scenario.send({ type: 'PaymentSucceeded', data: { orderId: 'o2' } });
    // Kept while parked; its decision sends data JSON cannot carry.
    await scenario.send({ type: 'Noted', data: { orderId: 'o2', amount: -1 } });
    bug.on = false;
    const handler = scenario.workflows.get(workflow.name);
    assert.equal(await handler?.parked.retry('o2'), 'parked');
    const [parked] = (await handler?.parked.list()) ?? [];
    assert.equal(parked?.input.type, 'Noted', 'parked on the input whose decision could not be recorded');
    assert.match(parked?.error.message ?? '', /outputs\[0\]\.message\.data/);
    await scenario.drain();
    assert.ok(scenario.deliveredTypes().includes('ShipOrder'), 'the payment, decided before it, went through');
  });

  it('a kept input whose schedule cannot be recorded (message data JSON cannot carry) parks the instance on it, as a live input does', async () => {
    type Reminded =
      | Event<'Opened', { id: string }>
      | Event<'Paid', { id: string }>
      | Event<'Remind', { id: string; n: number }>;
    const workflow = defineWorkflow<null, Reminded, Event<'Receipt', { id: string }>>({
      name: 'reminder',
      inputs: ['Opened', 'Paid', 'Remind'],
      start: ['Opened'],
      correlate: (input) => input.data.id,
      initialState: () => null,
      evolve: (state) => state,
      decide: (input) => {
        if (input.type === 'Opened') return [];
        if (input.type === 'Paid') {
          if (bug.on) throw new NonRetryableError('a bug in the payment step');
          return [send({ type: 'Receipt', data: { id: input.data.id } })];
        }
        // A negative count gives NaN, which JSON cannot carry.
        const message = { type: 'Remind' as const, data: { id: input.data.id, n: Math.sqrt(input.data.n) } };
        return [schedule({ token: 'remind', afterMs: 1000, message })];
      },
    });
    const scenario = createWorkflowScenario({ workflows: [workflow] });
    await scenario.send({ type: 'Opened', data: { id: 'r1' } });
    await scenario.send({ type: 'Remind', data: { id: 'r1', n: -1 } });
    bug.on = true;
    await scenario.send({ type: 'Opened', data: { id: 'r2' } });
    await scenario.send({ type: 'Paid', data: { id: 'r2' } });
    await scenario.send({ type: 'Remind', data: { id: 'r2', n: -1 } });
    bug.on = false;
    const handler = scenario.workflows.get(workflow.name);
    assert.equal(await handler?.parked.retry('r2'), 'parked');
    const parked = (await handler?.parked.list()) ?? [];
    assert.deepEqual(
      parked.map((p) => [p.instanceId, p.input.type]),
      [
        ['r1', 'Remind'],
        ['r2', 'Remind'],
      ],
      'parked on the input whose schedule could not be recorded, live and in the retry alike',
    );
    for (const p of parked) assert.match(p.error.message, /outputs\[0\]\.message\.data/);
    await scenario.drain();
    assert.ok(scenario.deliveredTypes().includes('Receipt'), 'the payment, decided before it, went through');
  });
});

describe('a send the relay could never publish', () => {
  it('parks the instance on its input instead of being recorded (it would stop the relay for every instance)', async () => {
    const workflow = defineWorkflow<Record<string, never>, Input, Output>({
      name: 'keyed',
      inputs: ['OrderPlaced'],
      start: ['OrderPlaced'],
      correlate: (input) => input.data.orderId,
      initialState: () => ({}),
      evolve: (state) => state,
      decide: (input) => [send({ type: 'ChargeCard', data: { orderId: input.data.orderId }, key: '' })],
    });
    const scenario = createWorkflowScenario({ workflows: [workflow] });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o3' } });
    const instance = await scenario.instance(workflow, 'o3');
    assert.equal(instance.status, 'parked');
    assert.match(instance.parked?.record.error.message ?? '', /outputs\[0\]\.message\.key/);
    assert.equal(scenario.deliveredTypes().includes('ChargeCard'), false);
  });
});

describe('parking an instance whose state JSON cannot carry', () => {
  type Basket = { items: Map<string, number> };
  const basket = (toSnapshot?: (state: Basket) => unknown) =>
    defineWorkflow<Basket, Input, Output>({
      name: toSnapshot ? 'basket_snap' : 'basket',
      inputs: ['OrderPlaced', 'PaymentSucceeded'],
      start: ['OrderPlaced'],
      correlate: (input) => input.data.orderId,
      initialState: () => ({ items: new Map([['sku-1', 2]]) }),
      evolve: (state) => state,
      decide: (input) => {
        if (input.type === 'PaymentSucceeded') throw new NonRetryableError('a bug');
        return [];
      },
    });

  it('parks with the state left out and the reason, instead of failing the park', async () => {
    const workflow = basket();
    const scenario = createWorkflowScenario({ workflows: [workflow] });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'b1' } });
    await scenario.send({ type: 'PaymentSucceeded', data: { orderId: 'b1' } });
    const [parked] = (await scenario.workflows.get(workflow.name)?.parked.list()) ?? [];
    assert.equal(parked?.instanceId, 'b1');
    assert.equal(parked?.state, null);
    assert.match(parked?.stateOmitted ?? '', /state\.items: .*Map/);
  });

  it("keeps it through the snapshots' toSnapshot where one is given", async () => {
    const toSnapshot = (state: Basket) => ({ items: [...state.items] });
    const workflow = basket(toSnapshot);
    const scenario = createWorkflowScenario({
      workflows: [workflow],
      snapshots: {
        basket_snap: {
          version: 1,
          toSnapshot,
          fromSnapshot: (s: unknown) => ({ items: new Map((s as { items: [string, number][] }).items) }),
        },
      },
    });
    await scenario.send({ type: 'OrderPlaced', data: { orderId: 'b2' } });
    await scenario.send({ type: 'PaymentSucceeded', data: { orderId: 'b2' } });
    const [parked] = (await scenario.workflows.get(workflow.name)?.parked.list()) ?? [];
    assert.deepEqual(parked?.state, { items: [['sku-1', 2]] });
    assert.equal(parked?.stateOmitted, undefined);
  });
});

describe('parked.retry with snapshots', () => {
  /** A state whose evolve changes it in place, as a class with an `apply` method often does. */
  class Tally {
    count = 0;
    apply(): Tally {
      this.count += 1;
      return this;
    }
  }
  type Bump = Event<'Bump', { id: string; fail?: boolean }>;
  const failing = { on: true };
  const tally = defineWorkflow<Tally, Bump, Event<'Counted', { count: number }>>({
    name: 'tally_mutable',
    inputs: ['Bump'],
    start: ['Bump'],
    correlate: (input) => input.data.id,
    initialState: () => new Tally(),
    evolve: (state, recorded) => (recorded.kind === 'input' ? state.apply() : state),
    decide: (input, state) => {
      if (input.data.fail && failing.on) throw new NonRetryableError('a bug');
      return [send({ type: 'Counted', data: { count: state.count + 1 } })];
    },
  });

  it('the snapshot it saves holds the state folded once, not evolved twice', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const errors: unknown[] = [];
    const handler = createWorkflowHandler(tally, {
      store,
      snapshots: {
        store: snapshots,
        version: 1,
        every: 1,
        toSnapshot: (state) => ({ count: state.count }),
        fromSnapshot: (data) => Object.assign(new Tally(), data as { count: number }),
        onError: (error) => errors.push(error),
      },
    });
    await handler.handle(createMessage({ type: 'Bump', data: { id: 't' } }));
    await handler.handle(createMessage({ type: 'Bump', data: { id: 't', fail: true } }));
    await handler.handle(createMessage({ type: 'Bump', data: { id: 't' } }));
    await handler.handle(createMessage({ type: 'Bump', data: { id: 't' } }));
    failing.on = false;
    assert.equal(await handler.parked.retry('t'), 'resumed');
    const saved = await snapshots.load<{ state: { count: number } }>('tally_mutable-t', { name: 'workflow' });
    assert.equal(saved?.state.state.count, 4, 'four inputs recorded, each folded once');
    // The next decision sees the same count.
    await handler.handle(createMessage({ type: 'Bump', data: { id: 't' } }));
    const { events } = await store.readStream('tally_mutable-t');
    const counted = events
      .filter((e) => e.type === '$workflow.sent')
      .map((e) => (e.data as { message: { data: { count: number } } }).message.data.count);
    assert.deepEqual(counted, [1, 2, 3, 4, 5]);
    assert.deepEqual(errors, []);
  });
});
