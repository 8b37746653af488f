import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fillOverdueShipping } from '../fixtures/workflow-database.ts';
import { openSqliteDeadLetterOperator, openSqliteInspector } from '../inspect/sqlite-inspector.ts';
import { type RunningUi, startUi } from './start-ui.ts';

let dir = '';
let ui: RunningUi | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-overdue-'));
  const db = join(dir, 'shipping.db');
  await fillOverdueShipping(db);
  ui = await startUi({
    inspector: openSqliteInspector(db),
    openDeadLetterOperator: async () => openSqliteDeadLetterOperator(db),
    port: 0,
  });
});
after(async () => {
  await ui?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string) => {
  assert.ok(ui);
  const answer = await fetch(new URL(path, ui.url));
  return { status: answer.status, body: await answer.text() };
};
const rowOf = (html: string, streamId: string) =>
  new RegExp(`<tr data-instance="${streamId}">(.*?)</tr>`, 's').exec(html)?.[1] ?? '';

describe('factline ui workflows pages on timers no runner fired', () => {
  it('lists the overdue timers of each instance and marks each on its page', async () => {
    const running = await get('/workflows?state=running');
    assert.equal(running.status, 200);
    assert.match(rowOf(running.body, 'shipping-B1'), /1<span class="error-message"> \(1 overdue\)<\/span>/);
    assert.doesNotMatch(rowOf(running.body, 'shipping-B2'), /overdue/);
    const late = await get('/workflows/shipping/B1');
    assert.match(late.body, /id="instance-timers">.*overdue by 1 d: no timer runner fired it/s);
    const onTime = await get('/workflows/shipping/B2');
    assert.doesNotMatch(onTime.body, /overdue/);
  });
});
