import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getPostgresEventStore, type PostgresEventStore } from '@factline/postgres';
import type { Browser } from 'playwright-core';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../../postgres/src/fixtures/server.ts';
import { addOperationalState } from '../fixtures/postgres-operations.ts';
import { openPostgresDeadLetterOperator, openPostgresInspector } from '../inspect/postgres-inspector.ts';
import { chromiumUnavailable, launchChromium, textOf, withScreenshotOnFailure } from './fixtures/browser.ts';
import { type RunningUi, startUi } from './start-ui.ts';

const unavailable = chromiumUnavailable() || (await postgresUnavailable());
const skip = unavailable === false ? false : unavailable;
const schema = testSchema('ui');
let store: PostgresEventStore | undefined;
let ui: RunningUi | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
  const metadata = { correlationId: 'checkout-7' };
  await store.append('order-7', [{ type: 'OrderPlaced', data: { total: 30 }, metadata }]);
  await store.append('order-7', [{ type: 'OrderShipped', data: {}, metadata }]);
  await addOperationalState(store, schema, metadata);
  ui = await startUi({
    inspector: await openPostgresInspector(postgresUrl, schema),
    openDeadLetterOperator: () => openPostgresDeadLetterOperator(postgresUrl, schema),
    port: 0,
    liveIntervalMs: 50,
  });
  browser = await launchChromium();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await ui?.close();
  await store?.close();
  await dropSchema(schema);
});

describe('factline ui in Chromium, on a PostgreSQL schema', { skip }, () => {
  it('clicks through every page; refuses a redrive with no queue, then discards', async () => {
    assert.ok(browser && ui);
    const page = await browser.newPage({ baseURL: ui.url });
    await withScreenshotOnFailure(page, 'postgres', async () => {
      const streams = () => page.$$eval('a.stream-link', (a) => a.map((e) => e.textContent));
      await page.goto('/streams?prefix=cart-');
      assert.deepEqual(await streams(), []);
      await page.goto('/streams?after=order-6&prefix=order-');
      assert.deepEqual(await streams(), ['order-7']);
      await page.goto('/streams?after=order-7&prefix=order-');
      assert.deepEqual(await streams(), []);
      await page.goto('/streams');
      assert.deepEqual(await streams(), ['order-7']);
      await page.click('a.stream-link');
      await page.click('a.event-link >> nth=1');
      assert.equal(await textOf(page, 'h1'), 'Event #2');
      await page.click('a.trace-link');
      assert.equal(await textOf(page, 'h1'), 'Trace checkout-7');
      assert.equal(await page.locator('.tree li[data-kind="dead-letter"]').count(), 1);
      await page.click('header a:text-is("Projections")');
      assert.equal(await textOf(page, 'tr[data-projection="order_count"] [data-field="lag"]'), '0');
      // Selectors, not waitForFunction: its polling evaluates a string, which the dashboard's CSP forbids.
      await page.waitForSelector('body[data-live-updates]:not([data-live-updates="0"])', { timeout: 10_000 });
      await page.click('header a:text-is("Outbox")');
      assert.equal(await textOf(page, '#outbox-waiting'), '1');

      await page.click('header a:text-is("Dead letters")');
      await page.click('a.dead-letter-link');
      assert.equal(await textOf(page, '.error-message'), 'Error: card declined');
      await page.click('a.action:text-is("Redrive…")');
      await page.click('#confirm');
      assert.match(await textOf(page, '.notice'), /billing/);
      assert.equal(await textOf(page, '#dead-letter-state'), 'dead', 'a refused redrive changes nothing');
      await page.click('a.action:text-is("Discard…")');
      await page.click('#confirm');
      assert.equal(await textOf(page, '#dead-letter-state'), 'discarded');
    });
    await page.close();
  });
});
