import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowedHosts, isLoopbackHost } from './security.ts';

test('a loopback bind accepts loopback names only; a named host itself; a wildcard any', () => {
  assert.deepEqual([...(allowedHosts('127.0.0.1', 4400) ?? [])].sort(), [
    '127.0.0.1:4400',
    '[::1]:4400',
    'localhost:4400',
  ]);
  assert.ok(allowedHosts('::1', 4400)?.has('[::1]:4400'));
  assert.deepEqual([...(allowedHosts('10.0.0.5', 80) ?? [])], ['10.0.0.5', '10.0.0.5:80']);
  assert.equal(allowedHosts('0.0.0.0', 4400), undefined);
  assert.equal(allowedHosts('::', 4400), undefined);
  assert.deepEqual(
    ['127.0.0.1', '127.3.2.1', 'localhost', '::1', '0.0.0.0', '10.0.0.5', '127.0.0.1.evil.example'].map(isLoopbackHost),
    [true, true, true, true, false, false, false],
  );
});
