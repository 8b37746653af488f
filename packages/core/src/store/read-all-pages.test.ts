import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isStoreClosedError, isValidationError, StoreClosedError } from '../errors/index.ts';
import { readAllInPages } from './read-all-pages.ts';
import type { RecordedEvent } from './types.ts';

const event = (position: number): RecordedEvent => ({
  id: `e-${position}`,
  streamId: 's-1',
  streamVersion: position,
  position,
  type: 'T',
  schemaVersion: 1,
  data: {},
  metadata: {},
  recordedAt: new Date(0),
});

/** A log of positions 1..`size`; records each page asked for. */
function source(size: number, options: { async?: boolean } = {}) {
  const asked: [after: number, size: number][] = [];
  let closed = false;
  const open = () => {
    if (closed) throw new StoreClosedError();
  };
  const pages = () => ({
    page: (after: number, pageSize: number) => {
      asked.push([after, pageSize]);
      const rows: number[] = [];
      for (let p = after + 1; p <= size && rows.length < pageSize; p++) rows.push(p);
      return options.async ? Promise.resolve(rows) : rows;
    },
    position: (row: number) => row,
    event,
  });
  return { asked, open, pages, close: () => (closed = true) };
}

const positions = async (iterable: AsyncIterable<RecordedEvent>) => {
  const out: number[] = [];
  for await (const e of iterable) out.push(e.position);
  return out;
};

describe('readAllInPages', () => {
  it('reads pages of batchSize after the position asked for, until a short page', async () => {
    for (const async of [false, true]) {
      const log = source(7, { async });
      assert.deepEqual(
        await positions(readAllInPages({ after: 1, batchSize: 3 }, log.open, log.pages)),
        [2, 3, 4, 5, 6, 7],
      );
      assert.deepEqual(log.asked, [
        [1, 3],
        [4, 3],
        [7, 3],
      ]);
    }
  });

  it('stops at limit, asking for no more than is left', async () => {
    const log = source(100);
    assert.deepEqual(
      await positions(readAllInPages({ from: 3, limit: 5, batchSize: 2 }, log.open, log.pages)),
      [3, 4, 5, 6, 7],
    );
    assert.deepEqual(log.asked, [
      [2, 2],
      [4, 2],
      [6, 1],
    ]);
  });

  it('is lazy: checks its options and the store on first next(), and the store again before each page', async () => {
    const log = source(10);
    const bad = readAllInPages({ batchSize: 0 }, log.open, log.pages);
    await assert.rejects(bad.next(), isValidationError);
    const reader = readAllInPages({ batchSize: 2 }, log.open, log.pages);
    assert.deepEqual(log.asked, []);
    assert.equal((await reader.next()).value?.position, 1);
    assert.equal((await reader.next()).value?.position, 2);
    log.close();
    await assert.rejects(reader.next(), isStoreClosedError);
    assert.deepEqual(log.asked, [[0, 2]]);
  });
});
