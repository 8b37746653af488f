import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TransportError, ValidationError } from '../errors/index.ts';
import { createInMemoryLeases } from '../lease/in-memory.ts';
import { MAX_TIMER_MS } from '../options/check-options.ts';
import { createInMemoryOutbox } from '../testing/in-memory-outbox.ts';
import { testOutboxRelayConformance } from '../testing/outbox-relay-conformance.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { registerTestSdk } from '../tracing/fixtures/otel-sdk.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { startOutboxRelay } from './outbox-relay.ts';

testOutboxRelayConformance({
  name: 'core relay on the in-memory outbox',
  async createEnvironment() {
    const outbox = createInMemoryOutbox();
    const transport = getInMemoryTransport();
    return {
      transport,
      enqueue: async (topic, type, key = 'k') => outbox.enqueue(topic, [{ type, data: {}, key }])[0] as never,
      pending: async () => outbox.pending(),
      startRelay: async (options, publishTo = transport) =>
        startOutboxRelay(outbox, publishTo, { ...options, leaseCheckMs: 20 }),
      close: async () => {},
    };
  },
});

describe('startOutboxRelay under a lease', () => {
  it('one of two relays publishes; when its lease is lost the other takes over and publishes the rest once', async () => {
    const table = new Map<string, string>();
    const outbox = createInMemoryOutbox();
    const transport = getInMemoryTransport();
    await transport.declareSubscription('orders', 'billing');
    const published = { a: 0, b: 0 };
    const counting = (name: 'a' | 'b') => ({
      ...transport,
      publish: async (...args: Parameters<typeof transport.publish>) => {
        published[name] += args[1].length;
        return transport.publish(...args);
      },
    });
    const leasesA = createInMemoryLeases(table);
    const leasesB = createInMemoryLeases(table);
    const a = startOutboxRelay(outbox, counting('a'), { lease: leasesA.lease('outbox'), leaseCheckMs: 10, pollMs: 5 });
    await a.ready();
    const b = startOutboxRelay(outbox, counting('b'), { lease: leasesB.lease('outbox'), leaseCheckMs: 10, pollMs: 5 });
    await b.ready();
    try {
      assert.equal(a.stats().lease, 'held');
      assert.equal(b.stats().lease, 'standby');
      outbox.enqueue('orders', [{ type: 'A', data: {}, key: 'k' }]);
      await waitUntil(() => outbox.pending() === 0, 'the holder publishing');
      assert.deepEqual(published, { a: 1, b: 0 });

      leasesA.lose();
      await waitUntil(() => b.stats().lease === 'held', 'the stand-by taking over', 2000);
      assert.equal(a.stats().lease, 'standby');
      outbox.enqueue('orders', [{ type: 'B', data: {}, key: 'k' }]);
      await waitUntil(() => outbox.pending() === 0, 'the new holder publishing');
      assert.deepEqual(published, { a: 1, b: 1 });
    } finally {
      await settlesWithin(Promise.all([a.stop(), b.stop()]), 5000, 'both stops');
    }
    assert.equal(table.size, 0, 'the lease released on stop');
  });
});

describe('startOutboxRelay holds', () => {
  it('a refused topic whose rows are deleted by hand is refused no more once a read finds none of them', async () => {
    const outbox = createInMemoryOutbox();
    const transport = getInMemoryTransport();
    await transport.declareSubscription('orders', 'billing');
    const refusing = {
      ...transport,
      publish: async (...args: Parameters<typeof transport.publish>) => {
        throw new TransportError(`topic '${args[0]}': refused by the broker`, { retryable: false });
      },
    };
    outbox.enqueue('orders', [{ type: 'Poison', data: {}, key: 'k' }]);
    const relay = startOutboxRelay(outbox, refusing, { pollMs: 5, holdBackoffMaxMs: 20, leaseCheckMs: 20 });
    try {
      await waitUntil(() => relay.stats().refused.length === 1, 'the topic refused');
      // The operator deletes the poison row, as the docs say.
      const rows = await outbox.read(10, []);
      await outbox.remove(rows.map((row) => row.seq));
      await waitUntil(() => relay.stats().refused.length === 0, 'the refusal forgotten', 2000);
    } finally {
      await settlesWithin(relay.stop(), 5000, 'stop');
    }
  });
});

describe('startOutboxRelay unreadable outbox', () => {
  it('a read that did not read (undefined) takes no held topic for gone and fails no round', async () => {
    const outbox = createInMemoryOutbox();
    const transport = getInMemoryTransport();
    let readable = true;
    let reads = 0;
    const port = {
      ...outbox,
      read: async (limit: number, skipTopics: readonly string[]) => {
        reads++;
        return readable ? outbox.read(limit, skipTopics) : undefined;
      },
    };
    outbox.enqueue('orders', [{ type: 'A', data: {}, key: 'k' }]);
    // No subscription to 'orders': held, tried again every 5 ms.
    const relay = startOutboxRelay(port, transport, { pollMs: 5, holdBackoffMaxMs: 5, leaseCheckMs: 20 });
    try {
      await waitUntil(() => relay.stats().held.includes('orders'), 'the topic held');
      readable = false;
      const from = reads;
      const held: (readonly string[])[] = [];
      await waitUntil(() => {
        held.push(relay.stats().held);
        return reads >= from + 6;
      }, 'six reads that did not read');
      assert.deepEqual(
        held.filter((topics) => !topics.includes('orders')),
        [],
      );
      assert.equal(relay.stats().failures, 0, 'not a failed round');
      readable = true;
      await transport.declareSubscription('orders', 'billing');
      await waitUntil(() => outbox.pending() === 0, 'published once readable and subscribed');
      assert.deepEqual(relay.stats().held, []);
    } finally {
      await settlesWithin(relay.stop(), 5000, 'stop');
    }
  });
});

describe('startOutboxRelay options', () => {
  it("refuses a pollMs, leaseCheckMs or holdBackoffMaxMs above a timer's limit, naming it", async () => {
    // Node fires a longer timer after 1 ms; a held topic's longer wait would outlast its subscription by weeks.
    for (const name of ['pollMs', 'leaseCheckMs', 'holdBackoffMaxMs'] as const) {
      const settings = { leaseCheckMs: 20, [name]: MAX_TIMER_MS + 1 };
      let started: ReturnType<typeof startOutboxRelay> | undefined;
      try {
        assert.throws(
          () => {
            started = startOutboxRelay(createInMemoryOutbox(), getInMemoryTransport(), settings);
          },
          (error: unknown) => error instanceof ValidationError && new RegExp(name).test(error.message),
          name,
        );
      } finally {
        await started?.stop();
      }
    }
  });
});

describe('startOutboxRelay metrics', () => {
  it('a failed backlog read at collection is told to onError, not counted as a failed round', async () => {
    const sdk = registerTestSdk();
    const outbox = createInMemoryOutbox();
    const broken = new Error('backlog unreadable');
    const errors: unknown[] = [];
    const relay = startOutboxRelay(
      {
        ...outbox,
        backlog: async () => {
          throw broken;
        },
      },
      getInMemoryTransport(),
      { leaseCheckMs: 20, onError: (error) => errors.push(error) },
    );
    try {
      await relay.ready();
      for (let i = 0; i < 3; i++) assert.deepEqual(await sdk.points('factline.outbox.backlog'), []);
      assert.deepEqual(errors, [broken, broken, broken]);
      assert.equal(relay.stats().failures, 0, 'no round failed');
    } finally {
      await settlesWithin(relay.stop(), 5000, 'stop');
      await sdk.shutdown();
    }
  });
});
