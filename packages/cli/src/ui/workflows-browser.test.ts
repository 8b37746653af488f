import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage, createWorkflowHandler } from '@factline/core';
import { getSqliteEventStore, sqliteTimerProjection } from '@factline/sqlite';
import type { Browser, Page } from 'playwright-core';
import { firstRelease, registry } from '../fixtures/shipping-schemas.ts';
import { defineShipping, workflows } from '../fixtures/shipping-workflow.ts';
import { fillWorkflowDatabase } from '../fixtures/workflow-database.ts';
import { openSqliteDeadLetterOperator, openSqliteInspector } from '../inspect/sqlite-inspector.ts';
import { openWorkflowStore } from '../workflows/open-store.ts';
import {
  chromiumUnavailable,
  documentPage,
  launchChromium,
  openCheckedPage,
  textOf,
  withScreenshotOnFailure,
} from './fixtures/browser.ts';
import { type RunningUi, startUi } from './start-ui.ts';

const skip = chromiumUnavailable();
let dir = '';
let db = '';
let ui: RunningUi | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-workflows-'));
  db = join(dir, 'shipping.db');
  await fillWorkflowDatabase(db);
  ui = await startUi({
    inspector: openSqliteInspector(db),
    openDeadLetterOperator: async () => openSqliteDeadLetterOperator(db),
    workflows: {
      openStore: () => openWorkflowStore({ kind: 'sqlite', path: db }),
      loadWorkflow: async (name) => {
        const found = workflows.find((w) => w.name === name);
        if (!found) throw new Error(`no workflow ${name}`);
        return found as never;
      },
    },
    port: 0,
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await ui?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function openPage(): Promise<{ page: Page; problems: string[] }> {
  assert.ok(browser && ui);
  return openCheckedPage(browser, ui.url);
}

describe('factline ui workflows page in Chromium, on the shipping instances', { skip }, () => {
  it('lists the parked instance with its error escaped, retries it and cancels another behind confirmations', async () => {
    const { page, problems } = await openPage();
    await withScreenshotOnFailure(page, 'workflows', async () => {
      await page.goto('/');
      await page.click('header a:text-is("Workflows")');
      assert.deepEqual(await page.$$eval('a.instance-link', (links) => links.map((a) => a.textContent)), ['A3']);
      assert.match(await textOf(page, 'td.error-message'), /refuses the address 12 Quay St <back door>$/);
      assert.equal(await page.locator('back').count(), 0, 'the address is text, not markup');
      await documentPage(page, 'workflows');

      await page.click('a.instance-link');
      assert.equal(await textOf(page, 'h1'), 'Workflow shipping-A3');
      assert.equal(await textOf(page, '#instance-state'), 'parked');
      const failed = JSON.parse(await textOf(page, 'pre[data-label="failed input"]')) as { address: string };
      assert.equal(failed.address, '12 Quay St <back door>');
      await documentPage(page, 'workflow');
      await page.click('a.action:text-is("Retry…")');
      assert.equal(await textOf(page, 'h1'), 'Retry shipping-A3');
      await page.click('#confirm');
      assert.equal(await textOf(page, '#instance-state'), 'running');
      assert.equal(await page.locator('a.action:text-is("Retry…")').count(), 0);

      await page.goto('/workflows?state=running');
      assert.deepEqual(await page.$$eval('a.instance-link', (links) => links.map((a) => a.textContent)), [
        'A1',
        'A3',
        'A4',
      ]);
      await page.click('a.instance-link:text-is("A4")');
      await page.click('a.action:text-is("Cancel instance…")');
      await page.click('#confirm');
      assert.equal(await textOf(page, '#instance-state'), 'cancelled');
      assert.match(await textOf(page, '#instance-timers'), /^none/);
      assert.deepEqual(problems, []);
    });
    await page.close();
  });

  it('refuses a cancel POSTed without the CSRF token, and a second cancel of an ended instance', async () => {
    assert.ok(ui);
    const refused = await fetch(new URL('/workflows/shipping/A1/cancel', ui.url), { method: 'POST' });
    assert.equal(refused.status, 403);
    const { page } = await openPage();
    await page.goto('/workflows/shipping/A1');
    assert.equal(await textOf(page, '#instance-state'), 'running', 'nothing changed');
    await page.goto('/workflows/shipping/A2/cancel');
    assert.match(await textOf(page, 'p.notice'), /It is completed already/);
    // A page starts after the stream id it is given; the first page is linked back.
    await page.goto('/workflows?state=running&after=shipping-A1');
    assert.deepEqual(await page.$$eval('a.instance-link', (links) => links.map((a) => a.textContent)), ['A3']);
    assert.equal(await page.locator('.pager a:text-is("« first page")').count(), 1);
    await page.close();
  });

  it('a cancel confirmed on a page shown before the instance moved on is refused (409), and the instance runs on', async () => {
    assert.ok(ui);
    const { page } = await openPage();
    await page.goto('/workflows/shipping/A1/cancel');
    // Meanwhile the instance handles another input.
    const store = getSqliteEventStore({ path: db, inlineProjections: [sqliteTimerProjection()] });
    try {
      const handler = createWorkflowHandler(defineShipping(true), { store });
      await handler.handle(
        createMessage({ type: 'AddressChanged', data: { orderId: 'A1', address: '1 New Rd' }, key: 'A1' }),
      );
    } finally {
      await store.close();
    }
    const answer = page.waitForResponse((response) => response.request().method() === 'POST');
    await page.click('#confirm');
    assert.equal((await answer).status(), 409);
    assert.match(await textOf(page, 'p.notice'), /changed after this page showed it/);
    await page.goto('/workflows/shipping/A1');
    assert.equal(await textOf(page, '#instance-state'), 'running');
    await page.close();
  });

  it('a retry that parks the instance again is answered 409 with a notice, the instance shown parked', async () => {
    assert.ok(browser);
    const again = join(dir, 'parks-again.db');
    await fillWorkflowDatabase(again);
    const refusing = await startUi({
      inspector: openSqliteInspector(again),
      openDeadLetterOperator: async () => openSqliteDeadLetterOperator(again),
      // The release still refusing the address: the retry decides the same way.
      workflows: {
        openStore: () => openWorkflowStore({ kind: 'sqlite', path: again }),
        loadWorkflow: async () => defineShipping(true) as never,
      },
      port: 0,
    });
    const page = await browser.newPage({ baseURL: refusing.url });
    try {
      await page.goto('/workflows/shipping/A3/retry');
      const answer = page.waitForResponse((response) => response.request().method() === 'POST');
      await page.click('#confirm');
      assert.equal((await answer).status(), 409);
      assert.match(await textOf(page, 'p.notice'), /parked the instance again/);
      assert.equal(await textOf(page, '#instance-state'), 'parked');
    } finally {
      await page.close();
      await refusing.close();
    }
  });

  it('with --registry, a retry decides the inputs upcast, as the application does', async () => {
    assert.ok(browser);
    const versioned = join(dir, 'versioned.db');
    await fillWorkflowDatabase(versioned, firstRelease);
    const running = await startUi({
      inspector: openSqliteInspector(versioned),
      openDeadLetterOperator: async () => openSqliteDeadLetterOperator(versioned),
      workflows: {
        openStore: () => openWorkflowStore({ kind: 'sqlite', path: versioned }, registry),
        loadWorkflow: async () => defineShipping(false) as never,
      },
      port: 0,
    });
    const page = await browser.newPage({ baseURL: running.url });
    try {
      await page.goto('/workflows/shipping/A3/retry');
      const answer = page.waitForResponse((response) => response.request().method() === 'POST');
      await page.click('#confirm');
      assert.equal((await answer).status(), 303);
      await page.waitForURL(/\/workflows\/shipping\/A3$/);
      assert.equal(await textOf(page, '#instance-state'), 'running');
    } finally {
      await page.close();
      await running.close();
    }
    const store = getSqliteEventStore({ path: versioned });
    try {
      const { events } = await store.readStream('shipping-A3');
      const sent = events.filter((e) => e.type === '$workflow.sent').at(-1)?.data as { message: unknown };
      // The address as version 2 of AddressChanged reads it: the carrier's note apart.
      assert.deepEqual(sent.message, { type: 'ShipOrder', data: { orderId: 'A3', address: '12 Quay St' } });
    } finally {
      await store.close();
    }
  });
});
