// `npm start`: the reference system on the embedded SQLite default.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { getSqliteEventStore, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { orderSummaries, readOrderSummaries } from './order-summaries.ts';

const path = resolve(process.env.FACTLINE_ORDERS_DB ?? new URL('../.data/orders.db', import.meta.url).pathname);
mkdirSync(dirname(path), { recursive: true });
// The demo tells the same story on every run: start from an empty file.
for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });

const store = getSqliteEventStore({ path });
// The order_summaries read model, kept by an async projection beside the store.
const projections = await startSqliteProjections(store, [orderSummaries]);
try {
  console.log(`Factline orders example — SQLite store at ${path}\n`);
  await runOrdersDemo(store);
  // Read-your-writes: wait until the projection has processed the last event appended.
  await projections.waitFor('order_summaries', await store.headPosition());
  console.log('Read model order_summaries (async projection):');
  for (const row of readOrderSummaries(store.database)) {
    console.log(
      `  ${row.order_id}  ${row.customer_id.padEnd(6)}  ${row.status.padEnd(9)}  total ${row.total}  items ${row.item_count}`,
    );
  }
  const status = projections.status('order_summaries');
  console.log(`  (projection ${status.state}, checkpoint #${status.checkpoint}, lag ${status.lag})`);
} finally {
  await projections.stop();
  await store.close();
}
