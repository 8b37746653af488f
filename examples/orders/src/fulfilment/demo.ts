import { foldEvents, handleCommand } from '@factline/core';
import { createWorkflowScenario } from '@factline/core/testing';
import { type OrderEvent, orderDecider } from '../order.ts';
import { fulfilment, paymentTimeoutMs } from './saga.ts';
import { fulfilmentServices } from './services.ts';

const items = [{ sku: 'mug', quantity: 2, unitPrice: 12 }];

/**
 * One order of each outcome through the fulfilment saga and its services,
 * on the scenario harness with a virtual clock (the 15 minutes pass at once).
 * Returns the lines `npm start` prints.
 */
export async function runFulfilmentDemo(): Promise<string[]> {
  const scenario = createWorkflowScenario({ workflows: [fulfilment], handlers: fulfilmentServices });
  const orders = [
    { orderId: '2001', customerId: 'c-1', story: 'paid' },
    { orderId: '2002', customerId: 'c-broke', story: 'card declined' },
    { orderId: '2003', customerId: 'c-slow', story: 'never paid' },
  ];
  for (const { orderId, customerId } of orders) {
    await handleCommand(
      scenario.store,
      `order-${orderId}`,
      { type: 'PlaceOrder', orderId, customerId, items },
      orderDecider,
    );
    await scenario.drain();
  }
  await scenario.advance(paymentTimeoutMs);
  const lines: string[] = [];
  for (const { orderId, story } of orders) {
    const { events } = await scenario.store.readStream<OrderEvent>(`order-${orderId}`);
    const order = foldEvents(orderDecider, events);
    const stock = (await scenario.store.readStream(`stock-${orderId}`)).events.map((e) => e.type).join(' → ');
    const last = events.at(-1);
    const reason = last?.type === 'OrderCancelled' ? ` (${last.data.reason})` : '';
    lines.push(`  order ${orderId} (${story.padEnd(13)}) ${order.status.padEnd(9)}${reason}  stock: ${stock}`);
  }
  const stats = scenario.workflows.get('fulfilment')?.stats();
  lines.push(`  (saga inputs recorded: ${stats?.recorded}; virtual time passed: ${paymentTimeoutMs / 60_000} min)`);
  return lines;
}
