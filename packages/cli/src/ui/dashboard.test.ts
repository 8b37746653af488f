import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { getSqliteEventStore, getSqliteTransport } from '@factline/sqlite';
import type { Browser, Page } from 'playwright-core';
import { orderSchemas } from '../../../../examples/orders/src/schemas.ts';
import { startOrderServices } from '../../../../examples/orders/src/services.ts';
import { fillOrdersDatabase } from '../fixtures/orders-database.ts';
import {
  chromiumUnavailable,
  documentPage,
  launchChromium,
  openCheckedPage,
  startSqliteDashboard,
  textOf,
  withScreenshotOnFailure,
} from './fixtures/browser.ts';
import type { RunningUi } from './start-ui.ts';

const skip = chromiumUnavailable();
let dir = '';
let db = '';
let ui: RunningUi | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-'));
  db = join(dir, 'orders.db');
  await fillOrdersDatabase(db);
  ui = await startSqliteDashboard(db);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await ui?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh page whose console errors (a refused script, a failed request) fail the test. */
function openPage(): Promise<{ page: Page; problems: string[] }> {
  assert.ok(browser && ui);
  return openCheckedPage(browser, ui.url);
}

const rowTexts = (page: Page, selector: string) =>
  page.$$eval(selector, (cells) => cells.map((cell) => (cell.textContent ?? '').trim()));

describe('factline ui in Chromium, on the orders SQLite file', { skip }, () => {
  it('clicks from the streams to an event, to its trace, to its dead letter; projections, dead letters, outbox', async () => {
    const { page, problems } = await openPage();
    await withScreenshotOnFailure(page, 'click-through', async () => {
      await page.goto('/');
      assert.equal(new URL(page.url()).pathname, '/streams');
      assert.deepEqual(await rowTexts(page, 'a.stream-link'), ['order-1001', 'order-1002', 'order-1003']);
      await documentPage(page, 'streams');

      await page.click('a.stream-link:text-is("order-1003")');
      assert.equal(await textOf(page, 'h1'), 'Stream order-1003');
      assert.deepEqual(await rowTexts(page, 'tbody td:nth-child(3)'), ['OrderPlaced v2', 'OrderCancelled v1']);
      await documentPage(page, 'stream');

      await page.click('a.event-link >> nth=0');
      assert.match(await textOf(page, 'h1'), /^Event #\d+$/);
      const data = JSON.parse(await textOf(page, 'pre[data-label="data"]')) as { orderId: string };
      assert.equal(data.orderId, '1003');
      await documentPage(page, 'event');

      await page.click('a.trace-link');
      assert.equal(await textOf(page, 'h1'), 'Trace checkout-1003');
      assert.equal(await page.locator('.tree li[data-kind="event"]').count(), 2);
      assert.equal(await page.locator('.tree li[data-kind="dead-letter"]').count(), 2);
      assert.match(await textOf(page, '.tree li[data-kind="event"] .at'), /^\+0 ms /);
      await documentPage(page, 'trace');

      await page.click('.tree li[data-kind="dead-letter"] a >> nth=0');
      assert.match(await textOf(page, 'h1'), /^Dead letter /);
      assert.equal(await textOf(page, '#dead-letter-state'), 'dead');
      await documentPage(page, 'dead-letter');

      await page.click('header a:text-is("Dead letters")');
      assert.equal(await page.locator('a.dead-letter-link').count(), 2);
      assert.deepEqual(await rowTexts(page, 'tbody td:nth-child(2)'), ['notification', 'notification']);
      await documentPage(page, 'dead-letters');

      await page.click('header a:text-is("Outbox")');
      assert.equal(await textOf(page, '#outbox-waiting'), '1');
      assert.deepEqual(await rowTexts(page, 'tbody td:first-child'), ['receipts']);
      await documentPage(page, 'outbox');

      await page.click('header a:text-is("Projections")');
      assert.equal(await textOf(page, 'tr[data-projection="order_events_relay"] [data-field="lag"]'), '0');
      // Selectors, not waitForFunction: its polling evaluates a string, which the dashboard's CSP forbids.
      await page.waitForSelector('body[data-live-updates]:not([data-live-updates="0"])', { timeout: 10_000 });
      await documentPage(page, 'projections');
      assert.deepEqual(problems, []);
    });
    await page.close();
  });

  it('shows the lag of a projection growing live as events are appended, without a reload', async () => {
    const { page } = await openPage();
    await withScreenshotOnFailure(page, 'live-lag', async () => {
      await page.goto('/projections');
      const lag = 'tr[data-projection="order_events_relay"] [data-field="lag"]';
      assert.equal(await textOf(page, lag), '0');
      const store = getSqliteEventStore({ path: db });
      try {
        await store.append('ping-1', [{ type: 'Pinged', data: {} }]);
      } finally {
        await store.close();
      }
      // A locator, not waitForFunction: its polling evaluates a string, which the dashboard's CSP forbids.
      await page.locator(lag).filter({ hasText: /^1$/ }).waitFor({ timeout: 10_000 });
    });
    await page.close();
  });

  it('redrives a dead letter behind a confirmation; the running service handles it', async () => {
    const { page } = await openPage();
    const store = getSqliteEventStore({ path: db, schemas: orderSchemas });
    const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 10 });
    const services = await startOrderServices(transport, store.database, { pollMs: 10 });
    try {
      await withScreenshotOnFailure(page, 'redrive', async () => {
        await page.goto('/dead-letters');
        const cancelled = page.locator('tr', { hasText: 'OrderCancelled' }).locator('a.dead-letter-link');
        await cancelled.click();
        const messageId = (await textOf(page, 'dd:has(> span.mono) span.mono')).trim();
        await page.click('a.action:text-is("Redrive…")');
        assert.equal(await textOf(page, 'h1'), 'Redrive dead letter');
        await documentPage(page, 'confirm');
        await page.click('#confirm');
        assert.equal(await textOf(page, '#dead-letter-state'), 'redriven');
        await waitUntil(
          () => services.actions().notification.some((a) => a.eventId === messageId),
          'notification handled the redriven OrderCancelled',
        );
        await page.click('a.trace-link');
        assert.equal(await page.locator('.tree li[data-kind="redrive"]').count(), 1);
        await page.goto('/dead-letters');
        assert.equal(await page.locator('a.dead-letter-link').count(), 1, 'one dead letter left');
      });
    } finally {
      await page.close();
      await services.stop();
      await transport.close();
      await store.close();
    }
  });
});
