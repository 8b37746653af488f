import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lazyAppendResult } from './append-result.ts';
import type { StoredEvent } from './idempotency.ts';

const stored = (position: number): StoredEvent => ({
  id: `e-${position}`,
  streamId: 'order-1',
  streamVersion: position,
  position,
  type: 'OrderPlaced',
  schemaVersion: 1,
  data: JSON.stringify({ n: position }),
  metadata: '{}',
  recordedAt: Date.UTC(2026, 10, 26),
});

describe('lazyAppendResult', () => {
  it('builds events on first access only, once, and keeps the shape of a plain result', () => {
    let builds = 0;
    const result = lazyAppendResult('order-1', 2, 2, () => {
      builds += 1;
      return [stored(1), stored(2)];
    });
    const other = lazyAppendResult('order-2', 1, 3, () => [stored(3)]);
    assert.equal(builds, 0, 'nothing built before events is read');
    assert.equal(Object.getPrototypeOf(result), Object.prototype);
    assert.deepEqual(Object.keys(result), ['streamId', 'version', 'position', 'events']);

    const events = result.events;
    assert.equal(builds, 1);
    assert.equal(result.events, events, 'the same array on every read');
    assert.equal(builds, 1);
    assert.deepEqual(
      events.map((e) => [e.id, e.data]),
      [
        ['e-1', { n: 1 }],
        ['e-2', { n: 2 }],
      ],
    );
    // Each result keeps its own events although all share one getter.
    assert.deepEqual(
      other.events.map((e) => e.id),
      ['e-3'],
    );
    assert.deepStrictEqual({ ...result }, { streamId: 'order-1', version: 2, position: 2, events });
    assert.deepEqual(JSON.parse(JSON.stringify(other)).events[0].id, 'e-3');
  });
});
