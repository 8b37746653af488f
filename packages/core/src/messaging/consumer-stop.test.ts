import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { createConsumer } from './consumer.ts';
import { getInMemoryInbox } from './consumer-ports.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage } from './message.ts';

describe('consumer stop', () => {
  it('resolves, and says why, when the inbox pruning in its fetch loop hangs on its backend', async () => {
    const transport = getInMemoryTransport();
    const inner = getInMemoryInbox();
    let pruning = false;
    // A prune waiting for a connection that never frees up.
    const inbox = Object.create(inner, {
      prune: {
        value: () => {
          pruning = true;
          return new Promise<void>(() => {});
        },
      },
    });
    const told: unknown[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox,
      drainTimeoutMs: 100,
      onError: (error) => told.push(error),
      handler: () => {},
    });
    await consumer.start();
    await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
    await waitUntil(() => pruning, 'the prune after the first receive');
    await settlesWithin(consumer.stop(), 5000, 'the stop');
    assert.equal(consumer.stats().state, 'stopped');
    assert.ok(told.some((error) => isTimeoutError(error) && /fetch loop did not end/.test(String(error))));
  });
});
