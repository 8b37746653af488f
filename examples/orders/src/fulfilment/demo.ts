import {
  createConsumer,
  createWorkflowHandler,
  defineEventRelay,
  defineWorkflowRelay,
  foldEvents,
  handleCommand,
  type Projection,
  type Transport,
  type WorkflowTimersOptions,
} from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import {
  getSqliteDeadLetterStore,
  getSqliteTimerStore,
  type SqliteEventStore,
  startSqliteProjections,
  startSqliteWorkflowTimers,
} from '@factline/sqlite';
import { type OrderEvent, orderDecider } from '../order.ts';
import { fulfilment, paymentTimeoutMs } from './saga.ts';
import { fulfilmentServices } from './services.ts';

/** The saga's inputs (the order placed, the services' answers) travel here, from the store. */
export const fulfilmentEventsTopic = 'fulfilment-events';
/** The saga's commands travel here, from its recorded decisions, to the services. */
export const fulfilmentCommandsTopic = 'fulfilment-commands';
/** The consumer groups: the saga on its inputs, the services on its commands. */
export const fulfilmentGroups = { saga: 'fulfilment', services: 'fulfilment-services' } as const;

/** The system clock, moved forward on demand: the timer poller's only, so the demo can let 15 minutes pass. */
export function createSkippingClock(): NonNullable<WorkflowTimersOptions['clock']> & { skip(ms: number): void } {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    setTimer(callback, ms) {
      const timer = setTimeout(callback, ms);
      return () => clearTimeout(timer);
    },
    skip(ms) {
      offset += ms;
    },
  };
}

/**
 * A relay that publishes only the events after `position`: the saga is
 * brought into a store that already holds orders, and takes the ones placed
 * from then on (the orders before it were settled without it).
 */
function relayAfter(position: number, relay: Projection<unknown>): Projection<unknown> {
  return {
    ...relay,
    handle(events, tx) {
      const later = events.filter((event) => event.position > position);
      return later.length === 0 ? undefined : relay.handle(later, tx);
    },
  };
}

const items = [{ sku: 'mug', quantity: 2, unitPrice: 12 }];
const orders = [
  { orderId: '2001', customerId: 'c-1', story: 'paid' },
  { orderId: '2002', customerId: 'c-broke', story: 'card declined' },
  { orderId: '2003', customerId: 'c-slow', story: 'never paid' },
];

/**
 * One order of each outcome through the fulfilment saga on the running
 * system: the saga's inputs relayed from the store to its consumer group, its
 * decisions recorded with their commands, the commands relayed (the store as
 * outbox) to the services' consumer group, and its 15-minute timer in the
 * store's file, fired by the leased poller. The poller's clock (only) is then
 * moved past the payment deadline; the saga itself waits its full 15 minutes.
 * Returns the lines `npm start` prints.
 */
export async function runFulfilmentOnSqlite(
  store: SqliteEventStore,
  transport: Transport,
  deadlineMs = 30_000,
): Promise<string[]> {
  // Failures are shown, not swallowed: a consumer retries, the poller tries again next round.
  const report = (what: string) => (error: unknown) => console.error(`${what}: ${(error as Error)?.message ?? error}`);
  const handler = createWorkflowHandler(fulfilment, { store });
  // A message that keeps failing is set aside in the file's dead letters (on any transport).
  const deadLetters = getSqliteDeadLetterStore({ database: store.database });
  const saga = createConsumer({
    name: fulfilmentGroups.saga,
    topic: fulfilmentEventsTopic,
    transport,
    pollMs: 50,
    deadLetters,
    onError: report('fulfilment saga'),
    handler: (message) => handler.handle(message),
  });
  const services = createConsumer({
    name: fulfilmentGroups.services,
    topic: fulfilmentCommandsTopic,
    transport,
    pollMs: 50,
    deadLetters,
    onError: report('fulfilment services'),
    handler: async (message) => {
      const service = fulfilmentServices[message.type as keyof typeof fulfilmentServices];
      await service?.(message, { store });
    },
  });
  // Subscribed before the relays publish anything.
  await saga.start();
  await services.start();
  const deployedAt = await store.headPosition();
  const relays = await startSqliteProjections(store, [
    relayAfter(
      deployedAt,
      defineEventRelay({
        name: 'fulfilment_events_relay',
        transport,
        topic: fulfilmentEventsTopic,
        handles: fulfilment.inputs.filter((type) => type !== 'PaymentTimedOut'),
      }),
    ),
    defineWorkflowRelay({ name: 'fulfilment_commands_relay', transport, topic: fulfilmentCommandsTopic }),
  ]);
  const clock = createSkippingClock();
  const timers = await startSqliteWorkflowTimers(store, {
    handlers: [handler],
    clock,
    pollMs: 50,
    onError: report('fulfilment timers'),
  });
  try {
    for (const { orderId, customerId } of orders) {
      await handleCommand(store, `order-${orderId}`, { type: 'PlaceOrder', orderId, customerId, items }, orderDecider, {
        metadata: { correlationId: `checkout-${orderId}` },
      });
    }
    const status = async (orderId: string) =>
      foldEvents(orderDecider, (await store.readStream<OrderEvent>(`order-${orderId}`)).events).status;
    await waitUntil(async () => (await status('2001')) === 'shipped', 'order 2001 shipped', deadlineMs);
    await waitUntil(async () => (await status('2002')) === 'cancelled', 'order 2002 cancelled', deadlineMs);
    // 2003's payment never comes: its saga waits on its timer, the only one pending in the file.
    const pending = getSqliteTimerStore({ database: store.database });
    await waitUntil(async () => (await pending.pendingCount()) === 1, 'order 2003 waiting for its payment', deadlineMs);
    clock.skip(paymentTimeoutMs);
    timers.wake();
    await waitUntil(async () => (await status('2003')) === 'cancelled', 'order 2003 cancelled', deadlineMs);
    await waitUntil(
      async () => (await store.readStream('stock-2003')).version === 2,
      'the stock of 2003 released',
      deadlineMs,
    );
    // Its payment is undone too: nothing was charged, so no charge for it from now on.
    await waitUntil(
      async () => (await store.readStream('payment-2003')).version === 1,
      'the payment of 2003 voided',
      deadlineMs,
    );
  } finally {
    await timers.stop();
    await relays.stop();
    await services.stop();
    await saga.stop();
  }
  const lines: string[] = [];
  for (const { orderId, story } of orders) {
    const { events } = await store.readStream<OrderEvent>(`order-${orderId}`);
    const order = foldEvents(orderDecider, events);
    const answers = async (service: string) =>
      (await store.readStream(`${service}-${orderId}`)).events.map((e) => e.type).join(' → ');
    const last = events.at(-1);
    const reason = last?.type === 'OrderCancelled' ? ` (${last.data.reason})` : '';
    lines.push(
      `  order ${orderId} (${story.padEnd(13)}) ${order.status.padEnd(9)}${reason}  stock: ${await answers('stock')}  payment: ${await answers('payment')}`,
    );
  }
  const stats = handler.stats();
  const fired = timers.stats();
  lines.push(
    `  (saga inputs recorded: ${stats.recorded}; timers fired: ${fired.fired}, the poller's clock moved ${paymentTimeoutMs / 60_000} min)`,
  );
  return lines;
}
