import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from './uuid-v7.ts';

const FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('uuidv7 has the RFC 9562 layout and carries its millisecond timestamp', () => {
  const ms = Date.UTC(2026, 10, 26, 12, 0, 0, 123);
  const id = uuidv7(ms + 10_000_000); // a fresh millisecond for this module's state
  assert.match(id, FORMAT);
  assert.equal(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16), ms + 10_000_000);
});

test('uuidv7 ids are unique and strictly increasing within one millisecond and when the clock goes back', () => {
  const ms = Date.now() + 20_000_000;
  const ids = [
    ...Array.from({ length: 5000 }, () => uuidv7(ms)),
    ...Array.from({ length: 10 }, () => uuidv7(ms - 5)),
    uuidv7(ms + 1),
  ];
  for (const id of ids) assert.match(id, FORMAT);
  assert.equal(new Set(ids).size, ids.length);
  const sorted = [...ids].sort();
  assert.deepEqual(sorted, ids);
});
