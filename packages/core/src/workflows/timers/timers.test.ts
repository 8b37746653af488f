import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { isValidationError, NonRetryableError } from '../../errors/index.ts';
import { createMessage } from '../../messaging/message.ts';
import { getInMemoryEventStore } from '../../store/in-memory.ts';
import type { Event, EventStore } from '../../store/types.ts';
import { waitUntil } from '../../testing/wait-until.ts';
import { cancelTimer, defineWorkflow, schedule } from '../define.ts';
import { type FlowInput, paymentFlow } from '../fixtures/payment-flow.ts';
import { createWorkflowHandler, type WorkflowHandler } from '../handler.ts';
import { workflowEventTypes as T } from '../records.ts';
import { createVirtualClock, systemClock, type VirtualClock } from './clock.ts';
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

  it('logs each dropped timer through its logger, as it logs failures', async () => {
    const lines: [string, string, unknown][] = [];
    const at = (level: string) => (fields: object | string, msg?: string) => lines.push([level, String(msg), fields]);
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock, logger });
    await charging('o1');
    const [timer] = await timers.due(clock.now() + minutes(15), 10);
    await store.deleteStream('flow-o1');
    clock.advance(minutes(15));
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 1, failed: 0 });
    assert.deepEqual(lines, [
      ['info', 'workflow timer dropped', { workflow: 'flow', streamId: 'flow-o1', timerId: timer?.timerId }],
    ]);
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

  it('drops a timer read before a newer schedule of its token replaced it, and keeps the new one', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock });
    await charging('o1');
    clock.advance(minutes(15));
    // The poller has read the timer; before it records it, the deadline is set again.
    const [first] = await timers.due(clock.now(), 10);
    assert.ok(first);
    await handler.handle(input('StockReserved', { orderId: 'o1' }));
    const [firing] = await handler.fireTimers([first]);
    assert.equal(firing?.outcome, 'timer-dropped');
    assert.equal(await handler.fireTimer(first), 'timer-dropped', 'alone too');
    const types = (await store.readStream('flow-o1')).events
      .filter((e) => e.type === T.input)
      .map((e) => (e.data as { message: { type: string } }).message.type);
    assert.ok(!types.includes('PaymentTimedOut'), 'the replaced timer recorded nothing');
    const pending = await timers.due(clock.now() + minutes(15), 10);
    assert.equal(pending.length, 1, 'the newer timer stays pending');
    assert.notEqual(pending[0]?.timerId, first.timerId);
    clock.advance(minutes(15));
    assert.deepEqual(await poller.fireDue(), { fired: 1, dropped: 0, failed: 0 }, 'the newer one fires');
  });

  it('drops a timer read before its cancel was recorded', async () => {
    type HoldInput =
      | Event<'Hold', { id: string }>
      | Event<'Release', { id: string }>
      | Event<'Expired', { id: string }>;
    const holds = defineWorkflow<{ expired: boolean }, HoldInput, never>({
      name: 'hold',
      inputs: ['Hold', 'Release', 'Expired'],
      start: ['Hold'],
      correlate: (message) => message.data.id,
      initialState: () => ({ expired: false }),
      evolve: (state, recorded) =>
        recorded.kind === 'input' && recorded.message.type === 'Expired' ? { expired: true } : state,
      decide: (message) => {
        if (message.type === 'Hold') {
          return [schedule({ token: 'expiry', afterMs: minutes(5), message: { type: 'Expired', data: message.data } })];
        }
        // Released: the instance goes on, its expiry cancelled.
        return message.type === 'Release' ? [cancelTimer('expiry')] : [];
      },
    });
    const holding = createWorkflowHandler(holds, { store, now: clock.now });
    await holding.handle(createMessage({ type: 'Hold', data: { id: 'h' } }));
    clock.advance(minutes(5));
    const [timer] = await timers.due(clock.now(), 10);
    assert.ok(timer);
    await holding.handle(createMessage({ type: 'Release', data: { id: 'h' } }));
    assert.equal(await holding.fireTimer(timer), 'timer-dropped');
    const inputs = (await store.readStream('hold-h')).events.filter((e) => e.type === T.input);
    assert.deepEqual(
      inputs.map((e) => (e.data as { message: { type: string } }).message.type),
      ['Hold', 'Release'],
    );
  });

  it('drops the timer of a deleted instance started again before it fell due', async () => {
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock });
    await charging('o1');
    // Read into the table before the delete, as the SQL stores write it with the append.
    assert.equal(await timers.pendingCount(), 1);
    await store.deleteStream('flow-o1');
    await handler.handle(input('OrderPlaced', { orderId: 'o1', amount: 2 }));
    clock.advance(minutes(16));
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 1, failed: 0 });
    const types = (await store.readStream('flow-o1')).events
      .filter((e) => e.type === T.input)
      .map((e) => (e.data as { message: { type: string } }).message.type);
    assert.ok(!types.includes('PaymentTimedOut'), 'the new instance got nothing of the old one');
    assert.equal(await timers.pendingCount(), 0);
  });

  it('drops the timer of an instance deleted for good, rather than failing on it at every look', async () => {
    const errors: unknown[] = [];
    const poller = createWorkflowTimers({ timers, handlers: [handler], clock, onError: (e) => errors.push(e) });
    await charging('o1');
    assert.equal(await timers.pendingCount(), 1);
    await store.deleteStream('flow-o1', { mode: 'hard' });
    clock.advance(minutes(16));
    assert.deepEqual(await poller.fireDue(), { fired: 0, dropped: 1, failed: 0 });
    assert.deepEqual(errors, []);
    assert.equal(await timers.pendingCount(), 0);
  });

  it('waits longer before each new try of a failing timer: the loop does not spin on it', async () => {
    const errors: unknown[] = [];
    // The system clock: a loop spinning on a timer due already turns through setTimeout(0), not microtasks alone.
    const poller = createWorkflowTimers({
      timers,
      handlers: [],
      clock: systemClock,
      pollMs: 100,
      onError: (e) => errors.push(e),
    });
    const past = createWorkflowHandler(paymentFlow, { store, now: () => Date.now() - minutes(16) });
    await past.handle(input('OrderPlaced', { orderId: 'o1', amount: 1 }));
    await past.handle(input('StockReserved', { orderId: 'o1' }));
    await poller.start();
    try {
      await waitUntil(() => errors.length >= 1, 'the timer without a handler reported');
      const since = Date.now();
      // Tries 100, 200 and 400 ms apart: at most 4 in the next 450 ms (every few ms when it spun).
      await new Promise((resolve) => setTimeout(resolve, 450));
      const elapsed = Date.now() - since;
      assert.ok(errors.length <= 4, `${errors.length} failures told in ${elapsed} ms`);
      assert.equal(await timers.pendingCount(), 1, 'still pending');
    } finally {
      await poller.stop();
    }
  });

  it('sleeps until the next timer not waiting for a retry, not until the retry of a failing one', async () => {
    const errors: unknown[] = [];
    const sleeps: number[] = [];
    const recording: VirtualClock = {
      ...clock,
      setTimer: (callback, ms) => {
        sleeps.push(ms);
        return clock.setTimer(callback, ms);
      },
    };
    const hour = minutes(60);
    const poller = createWorkflowTimers({
      timers,
      handlers: [handler],
      clock: recording,
      pollMs: hour,
      onError: (e) => errors.push(e),
    });
    // A timer of a workflow the poller has no handler for: it fails, and waits an hour (pollMs) for its retry.
    const orphan = createWorkflowHandler({ ...paymentFlow, name: 'orphan' }, { store, now: clock.now });
    await orphan.handle(input('OrderPlaced', { orderId: 'o1', amount: 1 }));
    await orphan.handle(input('StockReserved', { orderId: 'o1' }));
    await poller.start();
    try {
      await waitUntil(() => poller.stats().held && sleeps.length > 0, 'the poller sleeps');
      sleeps.length = 0;
      clock.advance(minutes(15));
      await waitUntil(() => errors.length === 1 && sleeps.length > 0, 'the orphan timer failed, the poller sleeps');
      assert.equal(sleeps.at(-1), hour, 'nothing but the failing timer: until its retry');
      await charging('o2'); // due in 15 minutes, before the retry
      sleeps.length = 0;
      poller.wake();
      await waitUntil(() => sleeps.length > 0, 'the poller sleeps again');
      assert.equal(sleeps[0], minutes(15));
      clock.advance(minutes(15));
      await waitUntil(() => poller.stats().fired === 1, 'the timer fired at its time');
    } finally {
      await poller.stop();
    }
  });

  it('stops at once while it waits after a failure of the store, on a virtual clock', async () => {
    const errors: unknown[] = [];
    const failing: TimerStore = {
      ...timers,
      due: async () => {
        throw new Error('the database is gone');
      },
    };
    const poller = createWorkflowTimers({
      timers: failing,
      handlers: [handler],
      clock,
      onError: (e) => errors.push(e),
    });
    await poller.start();
    await waitUntil(() => errors.length >= 1, 'the failure reported');
    // Nothing advances the virtual clock: the wait after the failure must not hold the stop.
    const stopped = await Promise.race([
      poller.stop().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
    ]);
    assert.equal(stopped, true, 'stop() resolved within 2 s');
    assert.match(String(errors[0]), /the database is gone/);
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

  it('refuses a pollMs or leaseCheckMs over a timer’s limit (2147483647 ms), naming it: the loop would spin', () => {
    for (const option of ['pollMs', 'leaseCheckMs']) {
      assert.throws(
        () => createWorkflowTimers({ timers, handlers: [], [option]: 2_147_483_648 }),
        (e: unknown) =>
          isValidationError(e) && e.issues[0]?.path.endsWith(`.${option}`) && /2147483647/.test(e.message),
      );
      createWorkflowTimers({ timers, handlers: [], [option]: 2_147_483_647 });
    }
  });
});
