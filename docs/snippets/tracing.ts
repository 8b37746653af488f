import {
  createEventBus,
  defineEventRelay,
  NonRetryableError,
  type OperationTracer,
  renderTraceTree,
  type TraceTree,
  traceTreeToJson,
} from '@factline/core';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteTracer,
  getSqliteTransport,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

/** An order flow on one SQLite file: the store, a relay to two groups, one of which refuses the order. */
export async function orderFlow(path: string) {
  const store = getSqliteEventStore({ path });
  const database = store.database;
  const transport = getSqliteTransport({ database, pollIntervalMs: 10 });
  const bus = createEventBus({ transport, topic: 'orders' });
  const durable = {
    inbox: getSqliteInbox({ database }),
    deadLetters: getSqliteDeadLetterStore({ database }),
    pollMs: 10,
  };
  bus.subscribe<Database>('shipping', ['OrderPlaced'], () => undefined, durable);
  bus.subscribe<Database>(
    'billing',
    ['OrderPlaced'],
    () => {
      throw new NonRetryableError('card declined');
    },
    durable,
  );
  await bus.start();
  const relay = await startSqliteProjections(store, [
    defineEventRelay({ name: 'orders_relay', transport, topic: 'orders', handles: ['OrderPlaced'] }),
  ]);
  await store.append('order-42', [
    { type: 'OrderPlaced', data: { total: 30 }, metadata: { correlationId: 'checkout-42' } },
  ]);
  await store.append('order-42', [{ type: 'OrderConfirmed', data: {}, metadata: { correlationId: 'checkout-42' } }]);
  return {
    database,
    async close() {
      await relay.stop();
      await bus.stop();
      await transport.close();
      await store.close();
    },
  };
}

/** The snippet of docs/observability.md: trace one operation and print it. */
export async function printTrace(database: Database): Promise<{ tree: TraceTree; text: string }> {
  const tracer: OperationTracer = getSqliteTracer({ database });
  // #region trace
  const tree = await tracer.traceOperation('checkout-42', { limit: 200 });
  const text = renderTraceTree(tree); // the indented tree for a terminal
  const json = traceTreeToJson(tree); // JSON.stringify(tree)'s text, for a tree of any depth
  // #endregion
  void json;
  return { tree, text };
}
