import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Browser } from 'playwright-core';
import { redisUnavailable, testApplication } from '../../../redis/src/fixtures/server.ts';
import { type BillingApplication, startBillingApplication } from '../fixtures/redis-billing.ts';
import {
  chromiumUnavailable,
  launchChromium,
  openCheckedPage,
  textOf,
  withScreenshotOnFailure,
} from './fixtures/browser.ts';
import { startRedisDashboard } from './fixtures/redis-dashboard.ts';
import type { RunningUi } from './start-ui.ts';

const unavailable = chromiumUnavailable() || (await redisUnavailable());
const skip = unavailable === false ? false : unavailable;
const application = testApplication('ui_browser');

describe('factline ui in Chromium, on a Redis application’s dead letters', { skip }, () => {
  const placed = createMessage({ type: 'OrderPlaced', key: 'order-1', data: { order: 1 } });
  const cancelled = createMessage({ type: 'OrderCancelled', key: 'order-2', data: { order: 2 } });
  let billing: BillingApplication | undefined;
  let ui: RunningUi | undefined;
  let browser: Browser | undefined;

  before(async () => {
    billing = await startBillingApplication(application, {
      refused: [placed, cancelled],
      accepted: [],
    });
    ui = await startRedisDashboard(application);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await ui?.close();
    await billing?.close();
  });

  it('lists the dead letters, opens one and redrives it through the confirmation page', async () => {
    assert.ok(browser && ui && billing);
    const { page, problems } = await openCheckedPage(browser, ui.url);
    const { refused, handled } = billing;
    await withScreenshotOnFailure(page, 'redis-redrive', async () => {
      await page.goto('/');
      assert.equal(new URL(page.url()).pathname, '/dead-letters');
      assert.deepEqual(await page.$$eval('header a:not(.brand)', (links) => links.map((a) => a.textContent)), [
        'Dead letters',
      ]);
      assert.equal(await page.locator('a.dead-letter-link').count(), 2);

      await page.locator('tr', { hasText: 'OrderPlaced' }).locator('a.dead-letter-link').click();
      assert.match(await textOf(page, 'h1'), /^Dead letter /);
      assert.equal(await textOf(page, '#dead-letter-state'), 'dead');
      assert.equal(await textOf(page, 'dd:has(> span.mono) span.mono'), placed.id);

      refused.delete(placed.id);
      await page.click('a.action:text-is("Redrive…")');
      assert.equal(await textOf(page, 'h1'), 'Redrive dead letter');
      await page.click('#confirm');
      assert.equal(await textOf(page, '#dead-letter-state'), 'redriven');
      await waitUntil(() => handled.includes(placed.id), 'billing handled the redriven OrderPlaced');

      await page.click('header a:text-is("Dead letters")');
      assert.deepEqual(await page.$$eval('tbody td:nth-child(4)', (cells) => cells.map((c) => c.textContent)), [
        'OrderCancelled',
      ]);
      assert.deepEqual(problems, []);
    });
    await page.close();
  });
});
