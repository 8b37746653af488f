import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createProjectionRunner } from '../projections/runner.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend } from '../testing/projections/in-memory-backend.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { checkConsumerLag } from './fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from './fixtures/otel-sdk.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

describe('projection lag metrics', () => {
  it('reports the lag in events and the age of the oldest event not applied, then 0 once caught up', async () => {
    // Events recorded 30 s before the collection (the store's clock), so the age is known within the test's run time.
    const store = getInMemoryEventStore({ now: () => Date.now() - 30_000 });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    const runner = createProjectionRunner(getInMemoryProjectionBackend(store), [
      {
        name: 'order-list',
        handles: ['OrderPlaced'],
        handle: async () => {
          entered = true;
          await held;
        },
      },
    ]);
    await store.append('order-1', [
      { type: 'OrderPlaced', data: {} },
      { type: 'OrderPlaced', data: {} },
    ]);
    const began = Date.now();
    await runner.start();
    try {
      await waitUntil(() => entered && runner.status('order-list').head === 2, 'the batch is being applied');
      const name = { 'factline.projection.name': 'order-list' };
      assert.deepEqual(await sdk.points('factline.projection.lag'), [{ attributes: name, value: 2 }]);
      const [lagging] = await sdk.points('factline.projection.lag.duration');
      assert.deepEqual(lagging?.attributes, name);
      const seconds = lagging?.value as number;
      assert.ok(seconds >= 30 && seconds < 30 + (Date.now() - began) / 1000 + 1, `about 30 s, got ${seconds}`);

      release();
      await waitUntil(() => runner.status('order-list').lag === 0, 'caught up');
      assert.deepEqual(await sdk.points('factline.projection.lag'), [{ attributes: name, value: 0 }]);
      assert.deepEqual(await sdk.points('factline.projection.lag.duration'), [{ attributes: name, value: 0 }]);
    } finally {
      release();
      await runner.stop();
    }
  });
});

describe('consumer lag metrics', () => {
  it('reports the messages waiting for a group on the in-memory transport and the age of the oldest', async () => {
    const transport = getInMemoryTransport();
    try {
      await checkConsumerLag(sdk, transport, 'bills');
    } finally {
      await transport.close();
    }
  });
});
