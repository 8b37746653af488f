import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer } from '../messaging/consumer.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createMessage } from '../messaging/message.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { paymentFlow, poison } from './fixtures/payment-flow.ts';
import { createWorkflowHandler } from './handler.ts';

describe('a workflow handler as a consumer handler', () => {
  it('follows the consumer’s retry policy on a retryable failure, and parks (acknowledged) on a terminal one', async () => {
    poison.failing = true;
    const store = getInMemoryEventStore();
    const transport = getInMemoryTransport();
    const workflow = createWorkflowHandler(paymentFlow, { store });
    let attempts = 0;
    const consumer = createConsumer({
      name: 'flow',
      topic: 'orders',
      transport,
      retryPolicy: () => ({ action: 'retry', delayMs: 0 }),
      handler: async (message) => {
        if (message.type === 'Poison' && (message.data as { terminal: boolean }).terminal === false) {
          attempts++;
          if (attempts === 3) poison.failing = false;
        }
        await workflow.handle(message);
      },
    });
    await consumer.start();
    try {
      await transport.publish('orders', [
        createMessage({ type: 'OrderPlaced', data: { orderId: 'o1', amount: 1 }, key: 'o1' }),
        createMessage({ type: 'Poison', data: { orderId: 'o1', terminal: false }, key: 'o1' }),
        createMessage({ type: 'OrderPlaced', data: { orderId: 'o2', amount: 1 }, key: 'o2' }),
      ]);
      await waitUntil(() => consumer.stats().handled === 3, 'three messages handled');
      assert.equal(consumer.stats().retries, 2, 'two failed attempts were retried by the policy');
      assert.equal(workflow.stats().recorded, 3);
      poison.failing = true;
      await transport.publish('orders', [
        createMessage({ type: 'Poison', data: { orderId: 'o2', terminal: true }, key: 'o2' }),
      ]);
      await waitUntil(() => consumer.stats().handled === 4, 'the terminal failure acknowledged');
      assert.equal(consumer.stats().deadLettered, 0);
      assert.deepEqual(
        (await workflow.parked.list()).map((p) => p.instanceId),
        ['o2'],
      );
    } finally {
      await settlesWithin(consumer.stop(), 5000, 'consumer.stop()');
      await transport.close();
    }
  });
});
