import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createKeyTally } from './key-tally.ts';

describe('createKeyTally', () => {
  it('tells a key is free once its last delivery in flight is settled', () => {
    const freed: string[] = [];
    const tally = createKeyTally((key) => freed.push(key));
    tally.handedOut('a');
    tally.handedOut('a');
    tally.handedOut('b');
    assert.equal(tally.size, 2);
    tally.settled('a');
    assert.deepEqual(freed, [], 'one of a is still in flight');
    tally.settled('b');
    tally.settled('a');
    assert.deepEqual(freed, ['b', 'a']);
    assert.equal(tally.size, 0);
  });

  it('a settle of a key it never counted frees it at once', () => {
    const freed: string[] = [];
    createKeyTally((key) => freed.push(key)).settled('x');
    assert.deepEqual(freed, ['x']);
  });
});
