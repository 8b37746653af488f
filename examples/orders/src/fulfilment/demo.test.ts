import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { getSqliteEventStore, getSqliteTransport, sqliteTimerProjection } from '@factline/sqlite';
import { orderSchemas } from '../schemas.ts';
import { runFulfilmentOnSqlite } from './demo.ts';

test('npm start runs one order of each outcome through the fulfilment saga on the SQLite system', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-fulfilment-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = getSqliteEventStore({
    path: join(dir, 'orders.db'),
    schemas: orderSchemas,
    inlineProjections: [sqliteTimerProjection()],
  });
  const transport = getSqliteTransport({ database: store.database });
  try {
    const lines = await runFulfilmentOnSqlite(store, transport);
    assert.match(lines[0] ?? '', /order 2001 .* shipped .*stock: StockReserved {2}payment: PaymentCharged$/);
    assert.match(
      lines[1] ?? '',
      /order 2002 .* cancelled \(card declined\)\s+stock: StockReserved → StockReleased {2}payment: PaymentFailed$/,
    );
    assert.match(
      lines[2] ?? '',
      /order 2003 .* cancelled \(no payment within 15 minutes\)\s+stock: StockReserved → StockReleased {2}payment: PaymentVoided$/,
    );
    assert.match(lines[3] ?? '', /timers fired: 1,/, 'the payment deadline fired once, from the file');
    // The saga's instance streams are in the file, each ended.
    for (const orderId of ['2001', '2002', '2003']) {
      const { events } = await store.readStream(`fulfilment-${orderId}`);
      assert.equal(events.at(-1)?.type, '$workflow.completed');
    }
  } finally {
    await transport.close();
    await store.close();
  }
});
