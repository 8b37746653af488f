import { type EventStore, foldEvents, handleCommand } from '@factline/core';
import { type OrderCommand, type OrderEvent, OrderRuleError, type OrderState, orderDecider } from './order.ts';

export interface DemoResult {
  orders: Record<string, OrderState>;
  log: { position: number; streamId: string; version: number; type: string }[];
  refused: string[];
}

/**
 * The reference system's first service: orders placed, paid, shipped and
 * cancelled through a decider, then read back and printed.
 */
export async function runOrdersDemo(
  store: EventStore,
  print: (line: string) => void = console.log,
): Promise<DemoResult> {
  const send = (orderId: string, command: OrderCommand) =>
    handleCommand(store, `order-${orderId}`, command, orderDecider, {
      metadata: { correlationId: `checkout-${orderId}` },
    });
  const refused: string[] = [];

  await send('1001', {
    type: 'PlaceOrder',
    orderId: '1001',
    customerId: 'ada',
    items: [{ sku: 'kettle', quantity: 1, unitPrice: 30 }],
  });
  await send('1001', { type: 'PayOrder', orderId: '1001', amount: 30 });
  await send('1001', { type: 'ShipOrder', orderId: '1001', carrier: 'post' });

  await send('1002', {
    type: 'PlaceOrder',
    orderId: '1002',
    customerId: 'grace',
    currency: 'GBP',
    items: [
      { sku: 'mug', quantity: 4, unitPrice: 6 },
      { sku: 'tea', quantity: 2, unitPrice: 8 },
    ],
  });
  await send('1002', { type: 'PayOrder', orderId: '1002', amount: 40, currency: 'GBP' });

  await send('1003', {
    type: 'PlaceOrder',
    orderId: '1003',
    customerId: 'alan',
    items: [{ sku: 'lamp', quantity: 1, unitPrice: 45 }],
  });
  await send('1003', { type: 'CancelOrder', orderId: '1003', reason: 'changed mind' });

  // Business rules refuse bad commands; nothing is written for them.
  const doomed: [string, OrderCommand][] = [
    ['1003', { type: 'PayOrder', orderId: '1003', amount: 45 }],
    ['1004', { type: 'PlaceOrder', orderId: '1004', customerId: 'edsger', items: [] }],
  ];
  for (const [orderId, command] of doomed) {
    try {
      await send(orderId, command);
    } catch (error) {
      if (!(error instanceof OrderRuleError)) throw error;
      refused.push(`${command.type} ${orderId}: ${error.message}`);
    }
  }

  const orders: Record<string, OrderState> = {};
  print('Orders (state rebuilt from each stream):');
  for (const id of ['1001', '1002', '1003']) {
    const { events, version } = await store.readStream(`order-${id}`);
    const state = foldEvents(orderDecider, events as unknown as OrderEvent[]);
    orders[id] = state;
    print(
      `  order-${id}  v${version}  ${state.status.padEnd(9)} total ${state.total} ${state.currency}  items ${state.itemCount}`,
    );
  }
  print('Refused commands:');
  for (const line of refused) print(`  ${line}`);

  const log: DemoResult['log'] = [];
  print('Global log:');
  for await (const event of store.readAll()) {
    log.push({ position: event.position, streamId: event.streamId, version: event.streamVersion, type: event.type });
    print(
      `  #${event.position}  ${event.streamId}@${event.streamVersion}  ${event.type}  (${event.metadata.correlationId})`,
    );
  }
  return { orders, log, refused };
}
