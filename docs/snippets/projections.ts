import { defineProjection, type RebuildProgress } from '@factline/core';
import { getSqliteEventStore, readLiveProjectionVersion, startSqliteProjections } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

// #region define
export const orderSummaries = defineProjection<Database>({
  name: 'order_summaries', // a-z 0-9 _ . -; the checkpoint is kept under it
  handles: ['OrderPlaced', 'OrderPaid'],
  init: (db) => {
    db.exec('CREATE TABLE IF NOT EXISTS order_summaries (order_id TEXT PRIMARY KEY, status TEXT, total REAL)');
  },
  reset: (db) => {
    db.exec('DELETE FROM order_summaries'); // for rebuilds
  },
  handle: (events, db) => {
    // Plain SQL through the handle it gets, inside the batch's transaction.
    const placed = db.prepare("INSERT INTO order_summaries (order_id, status, total) VALUES (?, 'placed', ?)");
    const paid = db.prepare("UPDATE order_summaries SET status = 'paid' WHERE order_id = ?");
    for (const event of events) {
      const data = event.data as { orderId: string; total?: number };
      if (event.type === 'OrderPlaced') placed.run(data.orderId, data.total);
      else paid.run(data.orderId);
    }
  },
  onFailure: 'stop', // or 'park'
});
// #endregion

/** Appends an order, reads it back through the projection, rebuilds it; resolves to the rows and status. */
export async function runSqliteProjections(path: string, onProgress: (progress: RebuildProgress) => void) {
  // #region sqlite-runner
  const store = getSqliteEventStore({ path });
  const projections = await startSqliteProjections(store, [orderSummaries], {
    batchSize: 500, // events per transaction while live
    maxBatchSize: 500, // while catching up, batches may double up to this (SQLite default: batchSize)
    maxAttempts: 5, // tries per batch before isolating the failing event
    initialBackoffMs: 100, // full jitter, doubling up to maxBackoffMs (5000)
    idleCheckMs: 1000, // look for appends from other processes this often
    leaseTtlMs: 5000, // a crashed holder's lease lasts this long
    leaseCheckMs: 1000, // the holder renews, a stand-by tries to take over, this often
    maxWriteHoldMs: 1000, // batches holding the write lock back to back leave it free 150 ms this often
  });

  const { position } = await store.append('order-1', [{ type: 'OrderPlaced', data: { orderId: '1', total: 30 } }]);
  await projections.waitFor('order_summaries', position, { timeoutMs: 5000 }); // read-your-writes
  const rows = store.database.prepare('SELECT * FROM order_summaries').all();
  // Also version, liveVersion, head, lastError and parked.
  const { state, checkpoint, lag, lease } = projections.status('order_summaries');
  await projections.rebuild('order_summaries', { onProgress }); // { position, target, fraction, rate, etaSeconds, … }
  await projections.stop(); // the batch in flight commits, then the runner stops
  // #endregion
  await store.close();
  return { rows, state, checkpoint, lag, lease };
}

/** The same projection inline: its rows are there when `append` resolves. */
export async function inlineSqlite(path: string) {
  // #region sqlite-inline
  const store = getSqliteEventStore({ path, inlineProjections: [orderSummaries] });
  // #endregion
  await store.append('order-2', [{ type: 'OrderPlaced', data: { orderId: '2', total: 12 } }]);
  const rows = store.database.prepare('SELECT * FROM order_summaries').all();
  await store.close();
  return rows;
}

// #region version-2
export const orderSummariesV2 = defineProjection<Database>({
  name: 'order_summaries', // the same name
  version: 2,
  handles: ['OrderPlaced', 'OrderPaid'],
  init: (db) => {
    db.exec('CREATE TABLE IF NOT EXISTS order_summaries_v2 (order_id TEXT PRIMARY KEY, paid INTEGER)');
  },
  reset: (db) => {
    db.exec('DELETE FROM order_summaries_v2');
  },
  handle: (events, db) => {
    const upsert = db.prepare(
      'INSERT INTO order_summaries_v2 (order_id, paid) VALUES (?, ?) ON CONFLICT (order_id) DO UPDATE SET paid = excluded.paid',
    );
    for (const event of events)
      upsert.run((event.data as { orderId: string }).orderId, event.type === 'OrderPaid' ? 1 : 0);
  },
  // Optional: called once after the switch, in a transaction of its own.
  retire: (db, previousVersion) => {
    if (previousVersion === 1) db.exec('DROP TABLE IF EXISTS order_summaries');
  },
});
// #endregion

/** Builds version 2 beside version 1 and reads whichever is live before and after the switch. */
export async function switchToVersion2(path: string) {
  const store = getSqliteEventStore({ path });
  const v1 = await startSqliteProjections(store, [orderSummaries]);
  const { position } = await store.append('order-3', [
    { type: 'OrderPlaced', data: { orderId: '3', total: 5 } },
    { type: 'OrderPaid', data: { orderId: '3' } },
  ]);
  await v1.waitFor('order_summaries', position);
  const liveTable = () => {
    // #region live-version
    const table = readLiveProjectionVersion(store, 'order_summaries') >= 2 ? 'order_summaries_v2' : 'order_summaries';
    // PostgreSQL (async): await readLiveProjectionVersion(store, 'order_totals'), or (pool, name, schema)
    // With a runner at hand: await projections.liveVersion('order_summaries')
    // #endregion
    return table;
  };
  const before = liveTable();
  await v1.stop();
  let switched = () => {};
  const switchedOver = new Promise<void>((resolve) => {
    switched = resolve;
  });
  const v2 = await startSqliteProjections(store, [orderSummariesV2], { onSwitch: () => switched() });
  await switchedOver;
  const after = liveTable();
  const rows = store.database.prepare(`SELECT * FROM ${after}`).all();
  await v2.stop();
  await store.close();
  return { before, after, rows };
}
