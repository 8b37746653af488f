import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createConsumer, defineEventRelay, getInMemoryInbox } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';
import { getSqliteTransport } from './sqlite-transport.ts';

// Contract 10: every part's stop() or close() resolves, in any order of
// shutting the parts down, even while they are busy. Five parts share one
// file (the transport on the store's connection, as examples/orders does):
// all 120 orders are tried.

type Part = 'store' | 'transport' | 'consumer' | 'outboxRelay' | 'eventRelay';
const parts: readonly Part[] = ['store', 'transport', 'consumer', 'outboxRelay', 'eventRelay'];

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'factline-shutdown-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite: shutting a service down', () => {
  it('every one of the 120 orders of stopping store, transport, consumer, outbox relay and event relay resolves', async () => {
    let n = 0;
    for (const order of permutations(parts)) {
      n += 1;
      const store = getSqliteEventStore({ path: join(dir, `shutdown-${n}.db`) });
      const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 5 });
      let handled = 0;
      const consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        inbox: getInMemoryInbox(),
        pollMs: 20,
        drainTimeoutMs: 500,
        handler: () => {
          handled += 1;
        },
      });
      await consumer.start();
      const outbox = getSqliteOutbox({ database: store.database });
      const outboxRelay = startSqliteOutboxRelay(outbox, transport, { pollMs: 5, lease: false });
      const runner = await startSqliteProjections(store, [
        defineEventRelay({ name: 'orders-relay', transport, topic: 'orders', handles: ['OrderPlaced'] }),
      ]);
      // Busy parts: a message in the outbox and an event in the store, both on their way to the consumer.
      store.database.transaction(() => {
        outbox.enqueue(store.database, 'orders', [{ type: 'Enqueued', data: { n }, key: `o-${n}` }]);
      })();
      await store.append(`order-${n}`, [{ type: 'OrderPlaced', data: { n } }]);
      await waitUntil(() => handled >= 1, `order ${n}: a message reached the consumer`);

      const stop: Record<Part, () => Promise<unknown>> = {
        store: () => store.close(),
        transport: () => transport.close(),
        consumer: () => consumer.stop(),
        outboxRelay: () => outboxRelay.stop(),
        eventRelay: () => runner.stop(),
      };
      for (const part of order)
        await settlesWithin(stop[part](), 5000, `${part}.stop() in the order ${order.join(', ')}`);
    }
    assert.equal(n, 120);
  });
});
