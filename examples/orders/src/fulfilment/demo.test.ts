import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFulfilmentDemo } from './demo.ts';

test('npm start shows one order of each outcome of the fulfilment saga', async () => {
  const lines = await runFulfilmentDemo();
  assert.match(lines[0] ?? '', /order 2001 .* shipped .*stock: StockReserved$/);
  assert.match(lines[1] ?? '', /order 2002 .* cancelled \(card declined\)\s+stock: StockReserved → StockReleased$/);
  assert.match(
    lines[2] ?? '',
    /order 2003 .* cancelled \(no payment within 15 minutes\)\s+stock: StockReserved → StockReleased$/,
  );
});
