import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAwayCount } from './away.ts';

describe('createAwayCount', () => {
  it("counts each hop until its tier's TTL has passed", () => {
    let clock = 1_000;
    const away = createAwayCount(() => clock);
    away.add(64);
    away.add(4096);
    clock += 10;
    away.add(64);
    assert.equal(away.count(), 3);
    clock = 1_064;
    assert.equal(away.count(), 2, 'the first 64 ms hop is back');
    clock = 1_074;
    assert.equal(away.count(), 1);
    clock = 1_000 + 4096;
    assert.equal(away.count(), 0);
  });
});
