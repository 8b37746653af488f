import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workflows } from '../fixtures/shipping-workflow.ts';
import {
  breakShippingRecordJson,
  corruptShippingRecords,
  fillWorkflowDatabase,
} from '../fixtures/workflow-database.ts';
import { openSqliteDeadLetterOperator, openSqliteInspector } from '../inspect/sqlite-inspector.ts';
import { openWorkflowStore } from '../workflows/open-store.ts';
import { confirmForm } from './fixtures/confirm-form.ts';
import { type RunningUi, startUi } from './start-ui.ts';

let dir = '';
let db = '';
let ui: RunningUi | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-unreadable-'));
  db = join(dir, 'shipping.db');
  await fillWorkflowDatabase(db);
  corruptShippingRecords(db);
  ui = await startUi({
    inspector: openSqliteInspector(db),
    openDeadLetterOperator: async () => openSqliteDeadLetterOperator(db),
    workflows: {
      openStore: () => openWorkflowStore({ kind: 'sqlite', path: db }),
      loadWorkflow: async () => workflows[0] as never,
    },
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
const instances = (html: string) => [...html.matchAll(/data-instance="([^"]+)"/g)].map((m) => m[1]);
const rowOf = (html: string, streamId: string) =>
  new RegExp(`<tr data-instance="${streamId}">(.*?)</tr>`, 's').exec(html)?.[1] ?? '';

describe('factline ui workflows pages on instances with a record that cannot be read', () => {
  it('lists such an instance with the record and what is wrong, beside the others', async () => {
    const running = await get('/workflows?state=running');
    assert.equal(running.status, 200);
    assert.deepEqual(instances(running.body), ['shipping-A1', 'shipping-A4']);
    assert.match(
      rowOf(running.body, 'shipping-A1'),
      /unreadable: record #4 \(\$workflow\.input, position \d+\): data must be an object, got null/,
    );
    assert.match(rowOf(running.body, 'shipping-A4'), /unreadable: record #3 \(\$workflow\.timer-scheduled/);
    const completed = await get('/workflows?state=completed');
    assert.deepEqual(instances(completed.body), ['shipping-A2']);
    assert.doesNotMatch(rowOf(completed.body, 'shipping-A2'), /unreadable/);
    const parked = await get('/workflows');
    assert.equal(parked.status, 200);
    assert.deepEqual(instances(parked.body), ['shipping-A3']);
    assert.match(rowOf(parked.body, 'shipping-A3'), /data\.error must be an object, got undefined/);
  });

  it("shows such an instance's records with the problem, offers no retry, and refuses one (409)", async () => {
    const shown = await get('/workflows/shipping/A3');
    assert.equal(shown.status, 200);
    assert.match(shown.body, /id="instance-state">parked</);
    assert.match(
      shown.body,
      /id="instance-unreadable">record #4 \(\$workflow\.parked, position \d+\): data\.error must be an object, got undefined</,
    );
    assert.doesNotMatch(shown.body, /Retry…/);
    assert.match(shown.body, /Cancel instance…/);

    const asked = await get('/workflows/shipping/A3/retry');
    assert.equal(asked.status, 409);
    assert.match(asked.body, /class="notice">Its record #4 \(\$workflow\.parked, position \d+\) cannot be read/);

    // A retry POSTed all the same (the token from the cancel's confirmation page) is refused too.
    const cancelPage = await get('/workflows/shipping/A3/cancel');
    assert.equal(cancelPage.status, 200);
    assert.ok(ui);
    const posted = await fetch(new URL('/workflows/shipping/A3/retry', ui.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(ui.url).origin },
      body: confirmForm(cancelPage.body),
      redirect: 'manual',
    });
    assert.equal(posted.status, 409);
    assert.match(await posted.text(), /cannot be read: data\.error must be an object, got undefined/);
    assert.match((await get('/workflows/shipping/A3')).body, /<dd>5<\/dd>/, 'nothing recorded');

    // A cancel ends it, also where the handler cannot fold its records.
    const cancelA1 = await get('/workflows/shipping/A1/cancel');
    assert.equal(cancelA1.status, 200);
    const cancelled = await fetch(new URL('/workflows/shipping/A1/cancel', ui.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(ui.url).origin },
      body: confirmForm(cancelA1.body),
      redirect: 'manual',
    });
    assert.equal(cancelled.status, 303);
    assert.match((await get('/workflows/shipping/A1')).body, /id="instance-state">cancelled</);

    const timer = await get('/workflows/shipping/A4');
    assert.equal(timer.status, 200);
    assert.match(timer.body, /id="instance-timers">none</);
    assert.match(timer.body, /data\.dueAt must be a time in ms since the epoch, got &#39;tomorrow&#39;/);
  });
});

describe('factline ui workflows pages on instances with a record whose row is not JSON', () => {
  let broken: RunningUi | undefined;
  before(async () => {
    const path = join(dir, 'not-json.db');
    await fillWorkflowDatabase(path);
    breakShippingRecordJson(path);
    broken = await startUi({
      inspector: openSqliteInspector(path),
      openDeadLetterOperator: async () => openSqliteDeadLetterOperator(path),
      workflows: {
        openStore: () => openWorkflowStore({ kind: 'sqlite', path }),
        loadWorkflow: async () => workflows[0] as never,
      },
      port: 0,
    });
  });
  after(() => broken?.close());
  const at = async (path: string, init?: RequestInit) => {
    assert.ok(broken);
    const answer = await fetch(new URL(path, broken.url), { redirect: 'manual', ...init });
    return { status: answer.status, body: await answer.text() };
  };
  const post = (path: string, form: string) => {
    assert.ok(broken);
    return at(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(broken.url).origin },
      body: form,
    });
  };

  it('lists such an instance as unreadable, shows the row as stored, refuses a retry (409) and cancels it', async () => {
    const running = await at('/workflows?state=running');
    assert.equal(running.status, 200);
    assert.deepEqual(instances(running.body), ['shipping-A1', 'shipping-A4']);
    assert.match(
      rowOf(running.body, 'shipping-A1'),
      /unreadable: record #4 \(\$workflow\.input, position \d+\): data is not JSON \(/,
    );
    const parked = await at('/workflows');
    assert.deepEqual(instances(parked.body), ['shipping-A3']);
    assert.match(rowOf(parked.body, 'shipping-A3'), /metadata is not JSON \(/);

    const shown = await at('/workflows/shipping/A1');
    assert.equal(shown.status, 200);
    assert.match(
      shown.body,
      /id="instance-unreadable">record #4 \(\$workflow\.input, position \d+\): data is not JSON/,
    );
    assert.match(shown.body, /&quot;\{\\&quot;message\\&quot;: oops&quot;/);
    const position = /position (\d+)\): data is not JSON/.exec(shown.body)?.[1];
    const event = await at(`/events/${position}`);
    assert.equal(event.status, 200);
    assert.match(event.body, /class="error-message">unreadable: data is not JSON \(/);

    const retry = await at('/workflows/shipping/A3/retry');
    assert.equal(retry.status, 409);
    assert.match(retry.body, /class="notice">Its record #4 \(\$workflow\.parked, position \d+\) cannot be read/);

    const cancelPage = await at('/workflows/shipping/A1/cancel');
    assert.equal(cancelPage.status, 200);
    const cancelled = await post('/workflows/shipping/A1/cancel', confirmForm(cancelPage.body));
    assert.equal(cancelled.status, 303);
    assert.match((await at('/workflows/shipping/A1')).body, /id="instance-state">cancelled</);
  });
});
