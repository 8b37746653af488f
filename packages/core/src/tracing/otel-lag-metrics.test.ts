import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createProjectionRunner, type ProjectionRunner } from '../projections/runner.ts';
import { withSchemas } from '../schema/schema-store.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend } from '../testing/projections/in-memory-backend.ts';
import { suiteSchemas } from '../testing/schema-store/fixtures.ts';
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

describe('projection lag metrics of a projection that applies nothing', () => {
  const appendHundred = (store: ReturnType<typeof getInMemoryEventStore>) =>
    store.append(
      'order-2',
      Array.from({ length: 100 }, () => ({ type: 'OrderPlaced', data: {} })),
    );

  /** Status and gauges agree that `lag` events wait, the oldest of them 30 s old. */
  const assertLag = async (runner: ProjectionRunner, projection: string, lag: number) => {
    await waitUntil(() => runner.status(projection).lag === lag, `lag ${lag} in status()`, 5000).catch((error) => {
      const { state, checkpoint, head } = runner.status(projection);
      throw new Error(`${(error as Error).message}: ${JSON.stringify({ state, checkpoint, head })}`);
    });
    const mine = async (metric: string) =>
      (await sdk.points(metric)).filter((p) => p.attributes['factline.projection.name'] === projection);
    assert.deepEqual(await mine('factline.projection.lag'), [
      { attributes: { 'factline.projection.name': projection }, value: lag },
    ]);
    const [age] = await mine('factline.projection.lag.duration');
    assert.ok((age?.value as number) >= 30, `the age of the oldest event not applied, got ${age?.value}`);
  };

  it('a paused projection counts the events appended while it holds', async () => {
    const store = getInMemoryEventStore({ now: () => Date.now() - 30_000 });
    const control = { paused: false, rebuildRequestedAt: null };
    const backend = { ...getInMemoryProjectionBackend(store), loadControl: async () => ({ ...control }) };
    const runner = createProjectionRunner(backend, [
      { name: 'paused-list', handles: ['OrderPlaced'], handle: () => undefined },
    ]);
    const { position } = await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
    await runner.start();
    try {
      await runner.waitFor('paused-list', position);
      control.paused = true;
      await waitUntil(() => runner.status('paused-list').state === 'paused', 'paused');
      await appendHundred(store);
      await assertLag(runner, 'paused-list', 100);
      assert.equal(runner.status('paused-list').state, 'paused');
    } finally {
      await runner.stop();
    }
  });

  it('a failed projection counts the events appended after it stopped', async () => {
    const store = getInMemoryEventStore({ now: () => Date.now() - 30_000 });
    const runner = createProjectionRunner(
      getInMemoryProjectionBackend(store),
      [
        {
          name: 'failed-list',
          handles: ['OrderPlaced', 'Garbled'],
          onFailure: 'stop',
          handle: (events) => {
            if (events.some((e) => e.type === 'Garbled')) throw new Error('cannot read it');
          },
        },
      ],
      { idleCheckMs: 20, maxAttempts: 1, sleep: async () => {} },
    );
    await store.append('garbled-1', [{ type: 'Garbled', data: {} }]);
    await runner.start();
    try {
      await waitUntil(() => runner.status('failed-list').state === 'failed', 'the projection stopped on the event');
      await appendHundred(store);
      await assertLag(runner, 'failed-list', 101);
      assert.equal(runner.status('failed-list').state, 'failed');
    } finally {
      await runner.stop();
    }
  });
});

describe('projection lag metrics of two runners', () => {
  it('two runners of a projection of one name report the most lag of either, in events and in age', async () => {
    // Each runner is held on its first batch: one 2 events behind on a store 30 s behind, one 1 event on a store 10 s behind.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sides = [
      { events: 2, store: getInMemoryEventStore({ now: () => Date.now() - 30_000 }) },
      { events: 1, store: getInMemoryEventStore({ now: () => Date.now() - 10_000 }) },
    ].map(({ events, store }) => {
      const side = {
        events,
        store,
        entered: false,
        runner: createProjectionRunner(getInMemoryProjectionBackend(store), [
          {
            name: 'twin-list',
            handles: ['OrderPlaced'],
            handle: async () => {
              side.entered = true;
              await held;
            },
          },
        ]),
      };
      return side;
    });
    const mine = async (metric: string) =>
      (await sdk.points(metric)).filter((p) => p.attributes['factline.projection.name'] === 'twin-list');
    const name = { 'factline.projection.name': 'twin-list' };
    try {
      for (const side of sides) {
        await side.store.append(
          'order-1',
          Array.from({ length: side.events }, () => ({ type: 'OrderPlaced', data: {} })),
        );
        await side.runner.start();
        await waitUntil(
          () => side.entered && side.runner.status('twin-list').head === side.events,
          'the batch is being applied',
        );
      }
      assert.deepEqual(await mine('factline.projection.lag'), [{ attributes: name, value: 2 }]);
      const [age] = await mine('factline.projection.lag.duration');
      assert.ok((age?.value as number) >= 30, `the age of the older store's event, got ${age?.value}`);
    } finally {
      release();
      for (const side of sides) await side.runner.stop();
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

  it('still reports the age when the projection is stuck on an event its schemas cannot read', async () => {
    const raw = getInMemoryEventStore({ now: () => Date.now() - 30_000 });
    const store = withSchemas(raw, suiteSchemas());
    // Stored at version 1, whose upcaster throws: the projection stops on it.
    await raw.append('garbled-1', [{ type: 'Garbled', data: { text: 'x' } }]);
    const runner = createProjectionRunner(
      getInMemoryProjectionBackend(store),
      [{ name: 'garbled-list', handles: ['Garbled'], onFailure: 'stop', handle: () => undefined }],
      { idleCheckMs: 5, maxAttempts: 1, sleep: async () => {} },
    );
    await runner.start();
    try {
      await waitUntil(() => runner.status('garbled-list').state === 'failed', 'the projection stopped on the event');
      const name = { 'factline.projection.name': 'garbled-list' };
      const mine = async (metric: string) =>
        (await sdk.points(metric)).filter((p) => p.attributes['factline.projection.name'] === 'garbled-list');
      assert.deepEqual(await mine('factline.projection.lag'), [{ attributes: name, value: 1 }]);
      const [lagging] = await mine('factline.projection.lag.duration');
      assert.deepEqual(lagging?.attributes, name, 'the age is there when it matters most');
      assert.ok((lagging?.value as number) >= 30);
    } finally {
      await runner.stop();
    }
  });
});
