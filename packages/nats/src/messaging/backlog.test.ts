import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverNanos } from './backlog.ts';

test('server times compare to the ns, whatever fraction digits the server trimmed', () => {
  const ms = Date.parse('2026-12-05T12:59:26.476Z');
  assert.equal(serverNanos('2026-12-05T12:59:26.476123456Z'), BigInt(ms) * 1_000_000n + 123_456n);
  assert.equal(serverNanos('2026-12-05T12:59:26.4761Z'), BigInt(ms) * 1_000_000n + 100_000n, 'trailing zeros trimmed');
  assert.equal(serverNanos('2026-12-05T12:59:26Z'), BigInt(Date.parse('2026-12-05T12:59:26Z')) * 1_000_000n);
  assert.equal(
    serverNanos('2026-12-05T13:59:26.5+01:00'),
    BigInt(Date.parse('2026-12-05T12:59:26Z')) * 1_000_000n + 500_000_000n,
    'an offset',
  );
  // Two times within one ms: a Date cannot order them, the server's text can.
  const before = serverNanos('2026-12-05T12:59:26.476000001Z') as bigint;
  const after = serverNanos('2026-12-05T12:59:26.4760001Z') as bigint;
  assert.ok(before < after);
  assert.equal(serverNanos('not a time'), undefined);
});
