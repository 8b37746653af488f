import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { isValidationError, NonRetryableError } from '../../errors/index.ts';
import { createMessage } from '../../messaging/message.ts';
import { getInMemoryEventStore } from '../../store/in-memory.ts';
import type { EventStore } from '../../store/types.ts';
import { waitUntil } from '../../testing/wait-until.ts';
import { type FlowInput, paymentFlow } from '../fixtures/payment-flow.ts';
import { createWorkflowHandler, type WorkflowHandler } from '../handler.ts';
import { workflowEventTypes as T } from '../records.ts';
import { createVirtualClock, type VirtualClock } from './clock.ts';
import { getInMemoryTimerStore } from './in-memory.ts';
import { createWorkflowTimers } from './poller.ts';
import type { TimerStore } from './types.ts';

const input = (type: FlowInput['type'], data: Record<string, unknown>) => createMessage({ type, data });
const minutes = (n: number) => n * 60_000;

describe('workflow timers', () => {
  let store: EventStore;
  let clock: VirtualClock;
  let timers: TimerStore;
  let handler: WorkflowHandler;
  const charging = async (orderId: string) => {
    await handler.handle(input('OrderPlaced', { orderId, amount: 10 }));
    await handler.handle(input('StockReserved', { orderId }));
  };
  beforeEach(() => {
    clock = createVirtualClock(Date.parse('2026-01-01T00:00:00Z'));
    store = getInMemoryEventStore({ now: clock.now });
    timers = getInMemoryTimerStore(store);
    handler = createWorkflowHandler(paymentFlow, { store, now: clock.now });
  });

  it('schedules a timer with its decision and fires it once it is due, as an input of the instance', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock });
    await charging('o1');
    assert.equal(await timers.pendingCount(), 1);
    assert.equal(await timers.nextDueAt(), clock.now() + minutes(15));
    clock.advance(minutes(15) - 1);
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 0, failed: 0 });
    clock.advance(1);
    assert.deepEqual(await poller.fireDue(), { fired: 1, dropped: 0, failed: 0 });
    assert.equal(await timers.pendingCount(), 0);
    const { events } = await store.readStream('flow-o1');
    const fired = events.filter((e) => e.type === T.input).at(-1);
    assert.equal((fired?.data as { message: { type: string } } | undefined)?.message.type, 'PaymentTimedOut');
    const sent = events.filter((e) => e.type === T.sent).map((e) => (e.data as { message: { type: string } }).message);
    assert.deepEqual(
      sent.map((m) => m.type),
      ['ReserveStock', 'ChargePayment', 'ReleaseStock', 'CancelOrder'],
      'compensations first (reverse order), then the cancel',
    );
  });

  it('collapses a double firing: the second finds its input recorded', async () => {
    await charging('o1');
    clock.advance(minutes(15));
    const [timer] = await timers.due(clock.now(), 10);
    assert.ok(timer);
    const outcomes = await Promise.all([handler.fireTimer(timer), handler.fireTimer(timer)]);
    // The racing second append repeats the first one's ids and content: the store takes it as a retry.
    assert.ok(outcomes.every((outcome) => outcome === 'recorded' || outcome === 'duplicate'));
    assert.equal(await handler.fireTimer(timer), 'duplicate');
    const inputs = (await store.readStream('flow-o1')).events.filter((e) => e.type === T.input);
    assert.equal(inputs.length, 3);
  });

  it('drops the timers of a completed instance, and counts a timer that fires after the end', async () => {
    await charging('o1');
    clock.advance(minutes(15));
    const [timer] = await timers.due(clock.now(), 10);
    assert.ok(timer);
    await handler.handle(input('PaymentSucceeded', { orderId: 'o1' }));
    assert.equal(await timers.pendingCount(), 0, 'completion removed the pending timer');
    assert.equal(await handler.fireTimer(timer), 'timer-dropped');
    assert.equal(handler.stats()['timer-dropped'], 1);
    const types = (await store.readStream('flow-o1')).events.map((e) => e.type);
    assert.equal(types.at(-1), T.completed, 'nothing recorded after completion');
  });

  it('drops a pending timer whose instance stream was deleted', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock });
    await charging('o1');
    assert.equal(await timers.pendingCount(), 1);
    await store.deleteStream('flow-o1');
    clock.advance(minutes(16));
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 1, failed: 0 });
    assert.equal(await timers.pendingCount(), 0);
  });

  it('cancels a timer by token, and a schedule of the same token replaces the pending one', async () => {
    await charging('o1');
    const [first] = await timers.due(clock.now() + minutes(20), 10);
    await handler.handle(input('StockReserved', { orderId: 'o1' })); // schedules 'payment' again
    const pending = await timers.due(clock.now() + minutes(20), 10);
    assert.equal(pending.length, 1);
    assert.notEqual(pending[0]?.timerId, first?.timerId);
    await handler.handle(input('PaymentSucceeded', { orderId: 'o1' }));
    assert.equal(await timers.pendingCount(), 0);
  });

  it('fires timers due while nothing ran, late rather than never, earliest first', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock, batchSize: 2, concurrency: 1 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      await charging(id);
      clock.advance(1000);
    }
    clock.advance(minutes(60));
    assert.deepEqual(await poller.fireDue(), { fired: 5, dropped: 0, failed: 0 });
    const firedOrder = [];
    for await (const event of store.readAll({ types: [T.input] })) {
      const message = (event.data as { message: { type: string } }).message;
      if (message.type === 'PaymentTimedOut') firedOrder.push(event.streamId);
    }
    assert.deepEqual(firedOrder, ['flow-a', 'flow-b', 'flow-c', 'flow-d', 'flow-e']);
  });

  it('runs as a loop on the clock: advancing the virtual clock fires the timer', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock, pollMs: 60_000 });
    await poller.start();
    try {
      await charging('o1');
      poller.wake();
      await waitUntil(() => poller.stats().held, 'the poller holds its lease');
      clock.advance(minutes(15));
      await waitUntil(() => poller.stats().fired === 1, 'the timer fired');
      assert.equal(await timers.pendingCount(), 0);
    } finally {
      await poller.stop();
    }
    assert.equal(poller.stats().running, false);
  });

  it('reports a timer whose workflow has no handler and keeps it pending', async () => {
    const errors: unknown[] = [];
    const poller = createWorkflowTimers({ timers, handlers: [], clock, onError: (e) => errors.push(e) });
    await charging('o1');
    clock.advance(minutes(15));
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 0, failed: 1 });
    assert.equal(errors.length, 1);
    assert.equal(await timers.pendingCount(), 1);
  });

  it('removes a timer whose firing parked its instance: it does not fire again', async () => {
    const parking = createWorkflowHandler(
      {
        ...paymentFlow,
        decide: (message, state) => {
          if (message.type === 'PaymentTimedOut') throw new NonRetryableError('cannot time out');
          return paymentFlow.decide(message, state);
        },
      },
      { store, now: clock.now },
    );
    const poller = createWorkflowTimers({ timers, handlers: [parking], clock });
    await parking.handle(input('OrderPlaced', { orderId: 'p', amount: 1 }));
    await parking.handle(input('StockReserved', { orderId: 'p' }));
    clock.advance(minutes(15));
    assert.deepEqual(await poller.fireDue(), { fired: 1, dropped: 0, failed: 0 });
    assert.equal(parking.stats().parked, 1);
    assert.equal(await timers.pendingCount(), 0);
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 0, failed: 0 });
  });

  it('fires a batch through fireTimers: a failing instance is reported and stays pending, the others fire', async () => {
    const errors: unknown[] = [];
    let failing = true;
    const flaky = createWorkflowHandler(
      {
        ...paymentFlow,
        decide: (message, state) => {
          if (failing && message.type === 'PaymentTimedOut' && message.data.orderId === 'bad') {
            throw new Error('the clock service is down');
          }
          return paymentFlow.decide(message, state);
        },
      },
      { store, now: clock.now },
    );
    let batches = 0;
    const counting = {
      ...flaky,
      fireTimers: (due: Parameters<typeof flaky.fireTimers>[0]) => {
        batches++;
        return flaky.fireTimers(due);
      },
    };
    const poller = createWorkflowTimers({ timers, handlers: [counting], clock, onError: (e) => errors.push(e) });
    for (const id of ['a', 'bad', 'b', 'c']) {
      await flaky.handle(input('OrderPlaced', { orderId: id, amount: 1 }));
      await flaky.handle(input('StockReserved', { orderId: id }));
    }
    clock.advance(minutes(15));
    assert.deepEqual(await poller.fireDue(), { fired: 3, dropped: 0, failed: 1 });
    assert.equal(batches, 1, 'the four due timers went as one batch');
    assert.match(String((errors[0] as Error).message), /clock service is down/);
    assert.deepEqual(
      (await timers.due(clock.now(), 10)).map((t) => t.streamId),
      ['flow-bad'],
    );
    failing = false;
    assert.deepEqual(await poller.fireDue(), { fired: 1, dropped: 0, failed: 0 });
    assert.equal(await timers.pendingCount(), 0);
  });

  it('refuses unknown options', () => {
    assert.throws(() => createWorkflowTimers({ timers, handlers: [], pollMS: 5 } as never), isValidationError);
  });
});
