import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUILT } from './code-under-test.ts';
import { runWorkload } from './harness.ts';
import { workloads } from './harness-fixture.ts';

test('a failing peer gets a failed figure with its error, and the other subjects still print', async () => {
  const module = new URL('./harness-fixture.ts', import.meta.url).href;
  const figures = await runWorkload(workloads[0] as (typeof workloads)[0], { module });
  const by = new Map(figures.map((f) => [f.subject, f]));
  assert.equal(by.get('factline')?.value, 300);
  assert.equal(by.get('raw')?.value, 400);
  assert.equal(by.get('isolated')?.value, 200, 'a trial in a child process reports its rate');
  assert.equal(BUILT, false, 'the tests run the sources');
  assert.equal(by.get('isolated-code')?.value, 100, "a trial's child process measures the same code as the bench");
  assert.equal(by.get('factline/raw')?.value, 0.75);
  assert.match(by.get('peer-throws')?.failed ?? '', /SQLITE_BUSY: cannot commit transaction/);
  assert.match(by.get('peer-stray-error')?.failed ?? '', /stray error event/);
  assert.match(by.get('peer-exits')?.failed ?? '', /exit code 3\): Error: SQLITE_BUSY: database is locked/);
  assert.match(by.get('peer-hangs')?.failed ?? '', /no result after 3000 ms/);
  for (const name of ['peer-throws', 'peer-stray-error', 'peer-exits', 'peer-hangs']) {
    assert.equal(by.get(`${name}/raw`), undefined, `${name} is left out of the ratios`);
  }
});
