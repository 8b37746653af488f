import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getInMemoryEventStore } from '../index.ts';
import { testEventStoreConformance } from '../testing/index.ts';

testEventStoreConformance({ name: 'in-memory', createStore: (options) => getInMemoryEventStore(options) });

describe('in-memory store: removing a stream from a large log', () => {
  it('deletes one stream of 200,001 events and keeps the global log whole', async () => {
    const store = getInMemoryEventStore();
    const events = Array.from({ length: 1000 }, () => ({ type: 'Big', data: {} }));
    for (let i = 0; i < 200; i++) await store.append(`big-${i}`, events);
    await store.append('small-1', [{ type: 'Small', data: {} }]);
    // Before: the log was emptied, then refilled by a call whose arguments overflowed the stack.
    await store.deleteStream('small-1', { mode: 'hard' });
    let count = 0;
    for await (const _event of store.readAll()) count += 1;
    assert.equal(count, 200_000);
    assert.equal((await store.readStream('big-199')).events.length, 1000);
  });
});
