import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cartWithSnapshots } from './snapshots.ts';

test('the snapshots snippet writes a snapshot each 100 events and the state matches the events', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-snippets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { last, snapshot, failures } = await cartWithSnapshots(join(dir, 'carts.db'), 230);
  assert.deepEqual(last?.state, { items: 230, total: 460 });
  assert.equal(snapshot?.version, 200);
  assert.deepEqual(snapshot?.state, { items: 200, total: 400 });
  assert.deepEqual(failures, []);
});
