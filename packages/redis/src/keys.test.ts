import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyPart, redisKeys } from './keys.ts';

describe('redisKeys', () => {
  const keys = redisKeys('shop');

  it('gives every (topic, group) pair lease and readers keys of its own, whatever `:` the names hold', () => {
    const pairs: [string, string][] = [
      ['orders:eu', 'billing'],
      ['orders', 'eu:billing'],
      ['orders%3Aeu', 'billing'],
      ['orders', 'eu'],
      ['orders:eu:billing', '0'],
    ];
    const leases = pairs.map(([topic, group]) => keys.lease(topic, group, 0));
    const readers = pairs.map(([topic, group]) => keys.readers(topic, group));
    assert.equal(new Set(leases).size, pairs.length, leases.join(' '));
    assert.equal(new Set(readers).size, pairs.length, readers.join(' '));
  });

  it('writes a name with no `:` or `%` as it is, so the keys of such names are unchanged', () => {
    assert.equal(keys.lease('orders', 'billing', 3), 'shop:lease:orders:billing:3');
    assert.equal(keys.readers('orders', 'billing'), 'shop:readers:orders:billing');
    assert.equal(keyPart('a:b%c'), 'a%3Ab%25c');
  });
});
