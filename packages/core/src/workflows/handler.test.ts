import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { isConcurrencyError, isValidationError, isWorkflowError } from '../errors/index.ts';
import { createMessage } from '../messaging/message.ts';
import { createSchemaRegistry } from '../schema/registry.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { EventStore } from '../store/types.ts';
import { checkParksOnAnyFailureText } from './fixtures/failure-text-flow.ts';
import { type FlowInput, paymentFlow, poison } from './fixtures/payment-flow.ts';
import { createWorkflowHandler } from './handler.ts';
import { workflowEventTypes as T } from './records.ts';

const input = (type: FlowInput['type'], data: Record<string, unknown>) => createMessage({ type, data });

describe('createWorkflowHandler', () => {
  let store: EventStore;
  beforeEach(() => {
    store = getInMemoryEventStore();
    poison.failing = true;
  });

  it('records a start input and its outputs in one append of a new instance stream', async () => {
    const handler = createWorkflowHandler(paymentFlow, { store });
    const placed = input('OrderPlaced', { orderId: 'o1', amount: 30 });
    assert.equal(await handler.handle(placed), 'recorded');
    const { events } = await store.readStream('flow-o1');
    assert.deepEqual(
      events.map((e) => e.type),
      [T.input, T.sent],
    );
    assert.equal(events[0]?.position, 1);
    assert.equal(events[1]?.position, 2);
    assert.deepEqual(events[1]?.data, { message: { type: 'ReserveStock', data: { orderId: 'o1' } } });
    assert.equal(events[1]?.metadata.causationId, placed.id);
    assert.equal(events[1]?.metadata.correlationId, placed.metadata.correlationId);
  });

  it('records a redelivered input once', async () => {
    const handler = createWorkflowHandler(paymentFlow, { store });
    const placed = input('OrderPlaced', { orderId: 'o1', amount: 30 });
    await handler.handle(placed);
    assert.equal(await handler.handle(placed), 'duplicate');
    assert.equal((await store.readStream('flow-o1')).version, 2);
    assert.equal(handler.stats().duplicate, 1);
  });

  it('sends an input for no instance to the not-found hook and counts it; by default it is ignored', async () => {
    const seen: string[] = [];
    const handler = createWorkflowHandler(paymentFlow, {
      store,
      onNotFound: (message, instanceId) => seen.push(`${message.type}:${instanceId}`),
    });
    assert.equal(await handler.handle(input('StockReserved', { orderId: 'nope' })), 'not-found');
    assert.deepEqual(seen, ['StockReserved:nope']);
    assert.equal((await store.streamInfo('flow-nope')) ?? 'absent', 'absent');
    const quiet = createWorkflowHandler(paymentFlow, { store });
    assert.equal(await quiet.handle(input('PaymentSucceeded', { orderId: 'nope' })), 'not-found');
    assert.equal(quiet.stats()['not-found'], 1);
    assert.equal(await quiet.handle(input('SomethingElse' as FlowInput['type'], { orderId: 'x' })), 'ignored');
  });

  it('counts an input that `correlate` maps to no instance id (undefined, empty, not a string) as not found', async () => {
    const seen: (string | undefined)[] = [];
    const handler = createWorkflowHandler(paymentFlow, { store, onNotFound: (_message, id) => seen.push(id) });
    for (const orderId of [undefined, '', 42]) {
      assert.equal(await handler.handle(input('OrderPlaced', { orderId, amount: 1 })), 'not-found');
    }
    assert.deepEqual(seen, [undefined, undefined, undefined]);
    assert.equal(handler.stats()['not-found'], 3);
  });

  it('yields one instance from two racing start messages; the loser is recorded as a normal input', async () => {
    let conflicts = 0;
    const counting: EventStore = {
      ...store,
      append: (streamId, events, options) =>
        store.append(streamId, events, options).catch((error: unknown) => {
          if (isConcurrencyError(error)) conflicts++;
          throw error;
        }),
    };
    const handler = createWorkflowHandler(paymentFlow, { store: counting });
    const outcomes = await Promise.all([
      handler.handle(input('OrderPlaced', { orderId: 'race', amount: 1 })),
      handler.handle(input('OrderPlaced', { orderId: 'race', amount: 2 })),
    ]);
    assert.deepEqual(outcomes, ['recorded', 'recorded']);
    assert.equal(conflicts, 1, 'both decided on no instance; the second append lost');
    const { events } = await store.readStream('flow-race');
    assert.deepEqual(
      events.map((e) => e.type),
      [T.input, T.sent, T.input],
    );
    const reserves = events.filter((e) => e.type === T.sent);
    assert.equal(reserves.length, 1, 'the second start decided on the first one’s state: no second ReserveStock');
  });

  it('lets a retryable error of decide reach the caller with nothing recorded', async () => {
    const handler = createWorkflowHandler(paymentFlow, { store });
    await handler.handle(input('OrderPlaced', { orderId: 'o1', amount: 30 }));
    await assert.rejects(handler.handle(input('Poison', { orderId: 'o1', terminal: false })), /passing failure/);
    assert.equal((await store.readStream('flow-o1')).version, 2);
  });

  it('parks an instance on a terminal error, keeps later inputs, and retries them in order', async () => {
    const parkedHook: string[] = [];
    const handler = createWorkflowHandler(paymentFlow, {
      store,
      onParked: (streamId, error) => parkedHook.push(`${streamId}:${(error as Error).message}`),
    });
    await handler.handle(input('OrderPlaced', { orderId: 'o1', amount: 30 }));
    await handler.handle(input('OrderPlaced', { orderId: 'o2', amount: 5 }));
    const bad = input('Poison', { orderId: 'o1', terminal: true });
    assert.equal(await handler.handle(bad), 'parked');
    assert.deepEqual(parkedHook, ['flow-o1:poisoned input']);
    assert.equal(await handler.handle(input('StockReserved', { orderId: 'o1' })), 'deferred');
    // Another instance goes on.
    assert.equal(await handler.handle(input('StockReserved', { orderId: 'o2' })), 'recorded');

    const [parked, ...others] = await handler.parked.list();
    assert.equal(others.length, 0);
    assert.equal(parked?.instanceId, 'o1');
    assert.equal(parked?.input.id, bad.id);
    assert.equal(parked?.error.message, 'poisoned input');
    assert.equal(parked?.error.code, 'NON_RETRYABLE');
    assert.deepEqual((parked?.state as { status: string } | undefined)?.status, 'reserving');
    assert.equal(parked?.pending, 1);

    assert.equal(await handler.parked.retry('o1'), 'parked', 'still failing: parked again');
    assert.deepEqual(
      parkedHook,
      ['flow-o1:poisoned input', 'flow-o1:poisoned input'],
      'onParked is told of the park again',
    );
    assert.equal((await handler.parked.list()).length, 1);
    poison.failing = false;
    assert.equal(await handler.parked.retry('o1'), 'resumed');
    assert.equal(parkedHook.length, 2, 'a resumed retry does not call onParked');
    assert.deepEqual(await handler.parked.list(), []);
    const { events } = await store.readStream('flow-o1');
    const sent = events.filter((e) => e.type === T.sent).map((e) => (e.data as { message: { type: string } }).message);
    assert.deepEqual(
      sent.map((m) => m.type),
      ['ReserveStock', 'ChargePayment'],
      'the kept StockReserved was decided after the retried input',
    );
    assert.equal(await handler.handle(bad), 'duplicate');
    await assert.rejects(handler.parked.retry('o1'), isWorkflowError);
  });

  it('cancels an instance: later inputs are ignored and counted', async () => {
    const handler = createWorkflowHandler(paymentFlow, { store });
    await handler.handle(input('OrderPlaced', { orderId: 'o1', amount: 30 }));
    await handler.parked.cancel('o1', 'by hand');
    assert.equal(await handler.handle(input('StockReserved', { orderId: 'o1' })), 'after-end');
    assert.equal(handler.stats()['after-end'], 1);
    await assert.rejects(handler.parked.cancel('o1'), isWorkflowError);
    await assert.rejects(handler.parked.cancel('never'), isWorkflowError);
  });

  it('parks on an output the store refuses (not JSON) instead of retrying it forever', async () => {
    const broken = {
      ...paymentFlow,
      name: 'broken',
      decide: () => [{ kind: 'send', message: { type: 'X', data: 1n } }],
    };
    const handler = createWorkflowHandler(broken as unknown as typeof paymentFlow, { store });
    assert.equal(await handler.handle(input('OrderPlaced', { orderId: 'b', amount: 1 })), 'parked');
    const [parked] = await handler.parked.list();
    assert.equal(parked?.error.code, 'VALIDATION');
  });

  it('parks an instance whose decision fails with a NUL or a lone surrogate in its error, the text marked', () =>
    checkParksOnAnyFailureText(store, 'uploads'));

  it('parks on a timer scheduled after complete() in one decision, which would stay pending on an ended instance', async () => {
    const late = {
      ...paymentFlow,
      name: 'lateTimer',
      decide: () => [
        { kind: 'complete' },
        { kind: 'schedule', token: 'remind', afterMs: 60_000, message: { type: 'X', data: {} } },
      ],
    };
    const handler = createWorkflowHandler(late as unknown as typeof paymentFlow, { store });
    assert.equal(await handler.handle(input('OrderPlaced', { orderId: 'l', amount: 1 })), 'parked');
    const [parked] = await handler.parked.list();
    assert.equal(parked?.error.code, 'VALIDATION');
    assert.match(
      parked?.error.message ?? '',
      /^outputs\[1\]: schedules timer 'remind' after complete\(\) \(outputs\[0\]\)/,
    );
    // Scheduled before the end, in the same decision, it is cleared by the end as ever.
    const early = { ...late, name: 'earlyTimer', decide: () => [...late.decide()].reverse() };
    const ended = createWorkflowHandler(early as unknown as typeof paymentFlow, { store });
    assert.equal(await ended.handle(input('OrderPlaced', { orderId: 'e', amount: 1 })), 'recorded');
  });

  it('parks on a schedule with no token or due time, naming the output: an `at` that is not a Date (an ISO string from JSON) or an invalid one', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ at: '2026-12-08T10:00:00.000Z' }, /^outputs\[1\]\.at: must be a valid Date, got '2026-12-08T10:00:00\.000Z'/],
      [{ at: new Date(Number.NaN) }, /^outputs\[1\]\.at: must be a valid Date, got an invalid Date/],
      [{ afterMs: '5' }, /^outputs\[1\]\.afterMs: must be a finite number of ms/],
      [{}, /^outputs\[1\]: a schedule needs `at`/],
      [{ token: '', afterMs: 5 }, /^outputs\[1\]\.token: must be a non-empty string/],
    ];
    for (const [i, [timing, error]] of cases.entries()) {
      const broken = {
        ...paymentFlow,
        name: `unscheduled${i}`,
        decide: () => [
          { kind: 'send', message: { type: 'X', data: {} } },
          { kind: 'schedule', token: 't', message: { type: 'X', data: {} }, ...timing },
        ],
      };
      const handler = createWorkflowHandler(broken as unknown as typeof paymentFlow, { store });
      assert.equal(await handler.handle(input('OrderPlaced', { orderId: 's', amount: 1 })), 'parked');
      const [parked] = await handler.parked.list();
      assert.equal(parked?.error.code, 'VALIDATION');
      assert.match(parked?.error.message ?? '', error);
    }
  });

  it('records on a store whose schema registry refuses unknown types: the workflow records are Factline’s own', async () => {
    const strict = getInMemoryEventStore({ schemas: createSchemaRegistry([], { unknownTypes: 'error' }) });
    await assert.rejects(strict.append('x-1', [{ type: 'Unknown', data: {} }]), isValidationError);
    const handler = createWorkflowHandler(paymentFlow, { store: strict });
    assert.equal(await handler.handle(input('OrderPlaced', { orderId: 'o1', amount: 30 })), 'recorded');
    assert.equal((await strict.readStream('flow-o1')).events.length, 2);
  });

  it('refuses bad options and bad inputs with typed errors', async () => {
    assert.throws(() => createWorkflowHandler(paymentFlow, { store, bogus: 1 } as never), isValidationError);
    assert.throws(() => createWorkflowHandler(paymentFlow, {} as never), isValidationError);
    const handler = createWorkflowHandler(paymentFlow, { store });
    await assert.rejects(handler.handle({ type: 'OrderPlaced', data: {} } as never), isValidationError);
  });
});
