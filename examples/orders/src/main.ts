// `npm start`: the reference system on the embedded SQLite default.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type RecordedEvent, renderTraceTree } from '@factline/core';
import { getSqliteEventStore, getSqliteTracer, sqliteTimerProjection, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { runFulfilmentOnSqlite } from './fulfilment/demo.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';
import { orderSchemas } from './schemas.ts';
import { orderEventsRelay, printServices, startOrderServices } from './services.ts';
import { transportFromEnv } from './transport-from-env.ts';

const path = resolve(process.env.FACTLINE_ORDERS_DB ?? new URL('../.data/orders.db', import.meta.url).pathname);
mkdirSync(dirname(path), { recursive: true });
// The demo tells the same story on every run: start from an empty file.
for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });

// Appends are validated against the current schemas; every read gets the current versions.
// The workflows' timer table is kept inline: a timer is scheduled in the transaction of its decision.
const store = getSqliteEventStore({ path, schemas: orderSchemas, inlineProjections: [sqliteTimerProjection()] });
// The services' message transport: by default in the same SQLite file (sharing the store's
// connection); FACTLINE_TRANSPORT=<broker URL> runs them on that broker instead.
const bus = await transportFromEnv(store.database);
const { transport } = bus;
// Inventory, Payment and Notification: independent consumer groups, subscribed before anything is published.
const services = await startOrderServices(transport, store.database, { pollMs: 200 });
// The order_summaries read model, kept by an async projection beside the store, and the relay that
// publishes the order events from the store (its outbox) to the services.
const projections = await startSqliteProjections(store, [orderSummaries, orderEventsRelay(transport)]);
try {
  console.log(`Factline orders example — SQLite store at ${path}\n`);
  await runOrdersDemo(store);
  // Read-your-writes: wait until the projection has processed the last event appended.
  await projections.waitFor('order_summaries', await store.headPosition());
  console.log('Read model order_summaries (async projection):');
  for (const row of readOrderSummaries(store.database)) {
    console.log(
      `  ${row.order_id}  ${row.customer_id.padEnd(6)}  ${row.status.padEnd(9)}  total ${row.total} ${row.currency}  items ${row.item_count}`,
    );
  }
  const status = projections.status('order_summaries');
  console.log(`  (projection ${status.state}, checkpoint #${status.checkpoint}, lag ${status.lag})`);

  // Eventually consistent: wait (with a deadline) until every service has handled every event it subscribes to.
  const events: RecordedEvent[] = [];
  for await (const event of store.readAll()) events.push(event);
  await services.waitUntilHandled(events, 10_000);
  console.log(`\nServices on the event bus (relay → ${bus.describe} → one consumer group each):`);
  console.log('(their state is in tables of the same file, written once per message with its SQL inbox mark)');
  printServices(services);

  // The causal trace of one order: its events, each group's handling (inbox marks), dead letters, gaps.
  const trace = await getSqliteTracer({ database: store.database }).traceOperation('checkout-1001');
  console.log('\nTrace of order 1001 (everything carrying correlation id checkout-1001):');
  console.log(renderTraceTree(trace));

  // The fulfilment saga (a workflow): reserve stock → charge payment → ship, with compensation and a 15-minute
  // timer, on this store, this transport and the file's leased timer poller.
  console.log(`\nFulfilment saga, one order of each outcome (${bus.describe}, timers in the file):`);
  for (const line of await runFulfilmentOnSqlite(store, transport)) console.log(line);
} finally {
  await projections.stop();
  await services.stop();
  await bus.close();
  await store.close();
}
