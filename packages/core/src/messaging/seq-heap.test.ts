import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeqHeap } from './seq-heap.ts';

describe('SeqHeap', () => {
  it('pops items by seq, smallest first, whatever order they were pushed in', () => {
    const heap = new SeqHeap<{ seq: number }>();
    const seqs = [5, 3, 9, 1, 7, 2, 8, 6, 4, 0, 3];
    for (const seq of seqs) heap.push({ seq });
    assert.equal(heap.size, seqs.length);
    assert.equal(heap.peek()?.seq, 0);
    const popped: number[] = [];
    for (let item = heap.pop(); item !== undefined; item = heap.pop()) popped.push(item.seq);
    assert.deepEqual(
      popped,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(heap.size, 0);
    assert.equal(heap.pop(), undefined);
  });
});
