import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { getSqliteDeadLetterStore, getSqliteEventStore } from '@factline/sqlite';
import type { Browser, Page } from 'playwright-core';
import {
  chromiumUnavailable,
  launchChromium,
  startSqliteDashboard,
  textOf,
  withScreenshotOnFailure,
} from './fixtures/browser.ts';
import type { RunningUi } from './start-ui.ts';

const skip = chromiumUnavailable();
// Each would run script or add an element if a page put it into HTML unescaped.
const script = '<script>window.__xss = (window.__xss || 0) + 1; alert("xss")</script>';
const image = '"><img src=x onerror="window.__xss = 1; alert(1)">';
const streamId = `evil-${script}${image}`;
const correlationId = `corr-${image}`;
const deadLetterId = `dl-${image}`;

let dir = '';
let ui: RunningUi | undefined;
let browser: Browser | undefined;
let evil: Server | undefined;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-xss-'));
  const path = join(dir, 'evil.db');
  const store = getSqliteEventStore({ path });
  try {
    await store.append(streamId, [
      { type: 'Noted', data: { note: image, html: script }, metadata: { correlationId, [script]: image } },
    ]);
    const message = createMessage({ type: 'Noted', data: { note: script }, key: 'k', metadata: { correlationId } });
    const now = new Date();
    await getSqliteDeadLetterStore({ database: store.database }).add({
      id: deadLetterId,
      consumer: `group-${image}`,
      topic: 'notes',
      message,
      error: { type: 'Error', message: `${script}${image}`, stack: `Error: ${script}\n    at ${image}` },
      reason: image,
      attempts: 3,
      firstFailureAt: now,
      lastFailureAt: now,
      deadLetteredAt: now,
      redrives: [],
      state: 'dead',
    });
  } finally {
    await store.close();
  }
  ui = await startSqliteDashboard(path);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await ui?.close();
  await new Promise((resolve) => (evil ? evil.close(resolve) : resolve(undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Visits `path` and asserts nothing the data held ran or became an element; returns the page's text. */
async function visitSafely(page: Page, path: string, dialogs: string[]): Promise<string> {
  const response = await page.goto(path);
  assert.equal(response?.status(), 200, path);
  assert.deepEqual(dialogs, [], `no dialog on ${path}`);
  assert.equal(await page.evaluate('window.__xss'), undefined, `no injected script ran on ${path}`);
  assert.equal(await page.locator('img').count(), 0, `no injected image on ${path}`);
  assert.equal(await page.locator('script:not([src])').count(), 0, `no inline script on ${path}`);
  return (await page.textContent('main')) ?? '';
}

describe('factline ui escapes what the database holds', { skip }, () => {
  it('shows <script> and "><img onerror> in a stream id, event data and a dead letter error as text', async () => {
    assert.ok(browser && ui);
    const page = await browser.newPage({ baseURL: ui.url });
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await withScreenshotOnFailure(page, 'xss', async () => {
      assert.ok((await visitSafely(page, '/streams', dialogs)).includes(streamId));
      await page.click('a.stream-link');
      assert.equal(await textOf(page, 'h1'), `Stream ${streamId}`);
      await page.click('a.event-link');
      const eventPath = new URL(page.url()).pathname;
      const eventText = await visitSafely(page, eventPath, dialogs);
      assert.deepEqual(JSON.parse(await textOf(page, 'pre[data-label="data"]')), { note: image, html: script });
      assert.ok(eventText.includes(correlationId));
      await page.click('a.trace-link');
      assert.equal(await textOf(page, 'h1'), `Trace ${correlationId}`);
      await visitSafely(page, new URL(page.url()).pathname + new URL(page.url()).search, dialogs);
      const dead = `/dead-letters/${encodeURIComponent(deadLetterId)}`;
      assert.ok((await visitSafely(page, '/dead-letters', dialogs)).includes(`${script}${image}`));
      assert.equal(await textOf(page, '.error-message'), `${script}${image}`);
      assert.ok((await visitSafely(page, dead, dialogs)).includes(`group-${image}`));
      await visitSafely(page, `${dead}/redrive`, dialogs);
      await visitSafely(page, `/stream?id=${encodeURIComponent(streamId)}`, dialogs);
      await visitSafely(page, `/streams?prefix=${encodeURIComponent(script)}`, dialogs);
    });
    await page.close();
  });

  it('refuses a form another origin posts without the CSRF token (403), and changes nothing', async () => {
    assert.ok(browser && ui);
    const dashboard = ui.url;
    const target = `${dashboard}dead-letters/${encodeURIComponent(deadLetterId)}/discard`;
    const form = `<!DOCTYPE html><form id="f" method="post" action="${target.replace(/"/g, '&quot;')}">
      <input name="confirm" value="yes"></form><script>document.getElementById('f').submit()</script>`;
    const other = createServer((_request, response) => response.end(form));
    evil = other;
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const page = await browser.newPage();
    await withScreenshotOnFailure(page, 'cross-origin-post', async () => {
      const refused = page.waitForResponse((response) => response.request().method() === 'POST');
      await page.goto(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`);
      const response = await refused;
      assert.equal(response.status(), 403);
      assert.match(await response.text(), /^refused: /);
      const state = await page.goto(`${dashboard}dead-letters/${encodeURIComponent(deadLetterId)}`);
      assert.equal(state?.status(), 200);
      assert.equal(await textOf(page, '#dead-letter-state'), 'dead');
    });
    await page.close();
  });
});
