import {
  cancelTimer,
  complete,
  createConsumer,
  createWorkflowHandler,
  defineWorkflow,
  defineWorkflowRelay,
  type Event,
  type Logger,
  type Message,
  schedule,
  send,
} from '@factline/core';
import { createWorkflowScenario } from '@factline/core/testing';
import {
  getSqliteEventStore,
  getSqliteSnapshotStore,
  getSqliteTransport,
  sqliteTimerProjection,
  startSqliteProjections,
  startSqliteWorkflowTimers,
} from '@factline/sqlite';

// #region define
type CheckoutInput =
  | Event<'OrderPlaced', { orderId: string; total: number }>
  | Event<'PaymentSucceeded', { orderId: string }>
  | Event<'PaymentTimedOut', { orderId: string }>;
type CheckoutCommand =
  | Event<'ChargeCard', { orderId: string; amount: number }>
  | Event<'RefundCard', { orderId: string; amount: number }> // refunds the charge, or blocks a later one
  | Event<'ShipOrder', { orderId: string }>
  | Event<'CancelOrder', { orderId: string; reason: string }>;

export const checkout = defineWorkflow<{ total: number }, CheckoutInput, CheckoutCommand>({
  name: 'checkout', // instances are the streams checkout-<orderId>
  inputs: ['OrderPlaced', 'PaymentSucceeded', 'PaymentTimedOut'],
  start: ['OrderPlaced'], // only these create an instance; others for no instance go to onNotFound
  correlate: (input) => input.data.orderId,
  initialState: () => ({ total: 0 }),
  evolve: (state, recorded) =>
    recorded.kind === 'input' && recorded.message.type === 'OrderPlaced'
      ? { total: recorded.message.data.total }
      : state,
  decide: (input, state) => {
    const { orderId } = input.data;
    switch (input.type) {
      case 'OrderPlaced':
        return [
          send({ type: 'ChargeCard', data: { orderId, amount: input.data.total } }),
          schedule({ token: 'payment', afterMs: 15 * 60_000, message: { type: 'PaymentTimedOut', data: { orderId } } }),
        ];
      case 'PaymentSucceeded':
        return [cancelTimer('payment'), send({ type: 'ShipOrder', data: { orderId } }), complete()];
      case 'PaymentTimedOut':
        // The charge may still go through, and a PaymentSucceeded after complete() is dropped: undo it now.
        return [
          send({ type: 'RefundCard', data: { orderId, amount: state.total } }),
          send({ type: 'CancelOrder', data: { orderId, reason: `unpaid ${state.total}` } }),
          complete(),
        ];
    }
  },
});
// #endregion define

/** Runs the checkout on an SQLite file: returns the commands its relay delivered, once `count` arrived. */
export async function checkoutOnSqlite(
  path: string,
  placeOrder: (transport: ReturnType<typeof getSqliteTransport>) => Promise<void>,
  wait: (check: () => boolean) => Promise<void>,
) {
  const delivered: Message[] = [];
  // #region sqlite
  // The timer table is kept in each append's transaction: a timer exists exactly when its decision committed.
  const store = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
  const transport = getSqliteTransport({ database: store.database });
  const checkoutHandler = createWorkflowHandler(checkout, { store });
  // Inputs arrive through a consumer: its retry policy applies to retryable failures of decide.
  const inputs = createConsumer({
    name: 'checkout',
    topic: 'orders',
    transport,
    handler: (message) => checkoutHandler.handle(message),
  });
  // What the instances decided to send leaves through the store as outbox, at least once, ids derived.
  const relay = await startSqliteProjections(store, [
    defineWorkflowRelay({ name: 'checkout_relay', transport, topic: 'commands' }),
  ]);
  // One poller per file fires due timers (an SQLite lease; another process takes over if this one dies).
  const timers = await startSqliteWorkflowTimers(store, { handlers: [checkoutHandler] });
  // #endregion sqlite
  const billing = createConsumer({
    name: 'billing',
    topic: 'commands',
    transport,
    handler: (message) => void delivered.push(message),
  });
  await inputs.start();
  await billing.start();
  try {
    await placeOrder(transport);
    await wait(() => delivered.length >= 1);
    return { delivered, pending: await checkoutHandler.parked.list() };
  } finally {
    await timers.stop();
    await relay.stop();
    await inputs.stop();
    await billing.stop();
    await transport.close();
    await store.close();
  }
}

/** A checkout handler whose instances load from snapshots in the store's file. */
export function checkoutWithSnapshots(store: ReturnType<typeof getSqliteEventStore>, logger: Logger) {
  // #region snapshots
  const checkoutHandler = createWorkflowHandler(checkout, {
    store,
    logger, // snapshot failures are logged here at warn (or give snapshots.onError)
    snapshots: {
      store: getSqliteSnapshotStore({ database: store.database }),
      version: 1, // bump it when evolve or the state's shape changes
      every: 100, // write one each time an instance's stream crosses a multiple of 100 events
    },
  });
  // #endregion snapshots
  return checkoutHandler;
}

/** The parked-instances API, on a handler. */
export async function parkedInstances(handler: ReturnType<typeof createWorkflowHandler>) {
  // #region parked
  for (const parked of await handler.parked.list()) {
    // What it failed on, why, and the state it was in: fix the cause, then
    await handler.parked.retry(parked.instanceId); // decides the input again, then those kept since
    // or give up on it: its timers are dropped, later inputs ignored
    // await handler.parked.cancel(parked.instanceId, 'refunded by hand');
  }
  // #endregion parked
}

/** The checkout in the scenario harness: the deadline passes on the virtual clock. */
export async function checkoutTimesOut() {
  // #region harness
  const scenario = createWorkflowScenario({
    workflows: [checkout],
    handlers: { ChargeCard: () => {} }, // the card provider never answers
  });
  await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o-1', total: 30 } });
  await scenario.advance(15 * 60_000); // the timer fires; everything it leads to runs; no sleep
  // scenario.deliveredTypes() → ['OrderPlaced', 'ChargeCard', 'RefundCard', 'CancelOrder']
  // #endregion harness
  return { types: scenario.deliveredTypes(), instance: await scenario.instance(checkout, 'o-1') };
}
