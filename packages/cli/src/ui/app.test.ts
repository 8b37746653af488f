import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { getSqliteDeadLetterStore, getSqliteEventStore } from '@factline/sqlite';
import { fillOrdersDatabase } from '../fixtures/orders-database.ts';
import { runFactline } from '../fixtures/run-factline.ts';
import { openSqliteDeadLetterOperator, openSqliteInspector } from '../inspect/sqlite-inspector.ts';
import { startSqliteDashboard } from './fixtures/browser.ts';
import { confirmForm } from './fixtures/confirm-form.ts';
import { type RunningUi, startUi } from './start-ui.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly these headers (fetch would not let a test set `Host`). */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const links = (html: string, kind: string) =>
  [...html.matchAll(new RegExp(`class="[^"]*${kind}[^"]*" href="[^"]*">([^<]*)<`, 'g'))].map((m) => m[1]);
const nextHref = (html: string) => /<a rel="next" href="([^"]*)"/.exec(html)?.[1]?.replace(/&amp;/g, '&');

let dir = '';
let db = '';
let ui: RunningUi | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-ui-http-'));
  db = join(dir, 'orders.db');
  await fillOrdersDatabase(db);
  const store = getSqliteEventStore({ path: db });
  try {
    for (let i = 0; i < 120; i++) {
      await store.append(`cart-${String(i).padStart(3, '0')}`, [{ type: 'CartOpened', data: { i } }]);
    }
  } finally {
    await store.close();
  }
  ui = await startSqliteDashboard(db);
});
after(async () => {
  await ui?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('factline ui over HTTP', () => {
  it('pages the streams by the last id shown, and searches them by prefix', async () => {
    assert.ok(ui);
    const first = await send(`${ui.url}streams`);
    assert.equal(first.status, 200);
    const firstIds = links(first.body, 'stream-link');
    assert.equal(firstIds.length, 50);
    assert.equal(firstIds[0], 'cart-000');
    assert.equal(nextHref(first.body), '/streams?after=cart-049');
    const second = await send(`${ui.url}streams?after=cart-049`);
    assert.equal(links(second.body, 'stream-link')[0], 'cart-050');
    const third = await send(`${ui.url}${nextHref(second.body)?.slice(1)}`);
    assert.deepEqual(links(third.body, 'stream-link').slice(-4), [
      'cart-119',
      'order-1001',
      'order-1002',
      'order-1003',
    ]);
    assert.equal(nextHref(third.body), undefined);

    const orders = await send(`${ui.url}streams?prefix=order-`);
    assert.deepEqual(links(orders.body, 'stream-link'), ['order-1001', 'order-1002', 'order-1003']);
    const carts = await send(`${ui.url}streams?prefix=cart-1`);
    assert.equal(links(carts.body, 'stream-link').length, 20);
    const none = await send(`${ui.url}streams?prefix=zzz`);
    assert.match(none.body, /No stream matches/);
  });

  it('answers 404 for an unknown stream, event position or dead letter', async () => {
    assert.ok(ui);
    for (const path of [
      'stream?id=nope',
      'events/999999',
      'events/abc',
      'dead-letters/nope',
      'dead-letters/nope/redrive',
    ]) {
      assert.equal((await send(`${ui.url}${path}`)).status, 404, path);
    }
  });

  it('sends a Content-Security-Policy without inline script, and refuses a foreign Host (DNS rebinding)', async () => {
    assert.ok(ui);
    const page = await send(`${ui.url}streams`);
    const policy = String(page.headers['content-security-policy']);
    assert.match(policy, /script-src 'self'/);
    assert.doesNotMatch(policy, /unsafe-inline/);
    const port = new URL(ui.url).port;
    assert.equal((await send(`${ui.url}streams`, { headers: { Host: `localhost:${port}` } })).status, 200);
    const rebound = await send(`${ui.url}streams`, { headers: { Host: `attacker.example:${port}` } });
    assert.equal(rebound.status, 403);
    assert.equal((await send(`${ui.url}streams`, { headers: { Host: '127.0.0.1:1' } })).status, 403);
  });

  it('changes a dead letter only on a POST from its own origin carrying the CSRF token', async () => {
    assert.ok(ui);
    const list = await send(`${ui.url}dead-letters`);
    const id = /href="\/dead-letters\/([^"/]+)"/.exec(list.body)?.[1];
    assert.ok(id);
    const confirm = await send(`${ui.url}dead-letters/${id}/discard`);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(confirm.body)?.[1];
    assert.ok(csrf);
    const filled = confirmForm(confirm.body);
    const origin = new URL(ui.url).origin;
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const post = (headers: Record<string, string>, body: string) =>
      send(`${ui?.url}dead-letters/${id}/discard`, { method: 'POST', headers: { ...form, ...headers }, body });

    assert.equal((await post({ Origin: origin }, '')).status, 403, 'no token');
    assert.equal((await post({ Origin: origin }, '_csrf=wrong')).status, 403, 'wrong token');
    assert.equal((await post({ Origin: 'http://evil.example' }, `_csrf=${csrf}`)).status, 403, 'other origin');
    assert.equal((await post({}, `_csrf=${csrf}`)).status, 403, 'no origin, no referer');
    assert.equal((await send(`${ui.url}dead-letters/${id}/discard`, { method: 'GET' })).status, 200, 'GET only asks');
    assert.match((await send(`${ui.url}dead-letters/${id}`)).body, /id="dead-letter-state">dead</);

    const done = await post({ Origin: origin }, filled);
    assert.equal(done.status, 303);
    assert.match((await send(`${ui.url}dead-letters/${id}`)).body, /id="dead-letter-state">discarded</);
    const again = await post({ Referer: `${origin}/dead-letters/${id}/discard` }, filled);
    assert.equal(again.status, 409);
    assert.match(again.body, /Already discarded/);
  });

  it('a change the store did not make (the record changed meanwhile) is told with 409, not shown as done', async () => {
    const changing = await startUi({
      inspector: openSqliteInspector(db),
      // The record changes between the POST's read and its write: the store's check leaves it as it is.
      openDeadLetterOperator: async () => ({ ...openSqliteDeadLetterOperator(db), discard: async () => false }),
      port: 0,
    });
    try {
      const list = await send(`${changing.url}dead-letters`);
      const id = /href="\/dead-letters\/([^"/]+)"/.exec(list.body)?.[1];
      assert.ok(id);
      const confirm = await send(`${changing.url}dead-letters/${id}/discard`);
      const answer = await send(`${changing.url}dead-letters/${id}/discard`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(changing.url).origin },
        body: confirmForm(confirm.body),
      });
      // Before: a 303 to the record, as if discarded.
      assert.equal(answer.status, 409);
      assert.match(answer.body, /changed meanwhile/);
      assert.match(answer.body, /id="dead-letter-state">dead</);
    } finally {
      await changing.close();
    }
  });

  it('a record that failed again after its confirmation page was shown is left as it is (409), not changed unseen', async () => {
    assert.ok(ui);
    const list = await send(`${ui.url}dead-letters`);
    const id = /href="\/dead-letters\/([^"/]+)"/.exec(list.body)?.[1];
    assert.ok(id);
    const confirm = await send(`${ui.url}dead-letters/${id}/discard`);
    // The message fails again meanwhile: the same record now carries the newer failure.
    const store = getSqliteEventStore({ path: db });
    try {
      const deadLetters = getSqliteDeadLetterStore({ database: store.database });
      const shown = await deadLetters.get(id);
      assert.ok(shown);
      const later = new Date(shown.lastFailureAt.getTime() + 60_000);
      await deadLetters.add({
        ...shown,
        id: 'a-newer-failure',
        error: { type: 'Error', message: 'customer account frozen' },
        attempts: shown.attempts + 1,
        lastFailureAt: later,
        deadLetteredAt: later,
      });
    } finally {
      await store.close();
    }
    const answer = await send(`${ui.url}dead-letters/${id}/discard`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: new URL(ui.url).origin },
      body: confirmForm(confirm.body),
    });
    assert.equal(answer.status, 409);
    assert.match(answer.body, /changed after this page showed it/);
    assert.match(answer.body, /customer account frozen/);
    assert.match((await send(`${ui.url}dead-letters/${id}`)).body, /id="dead-letter-state">dead</);
  });

  it('with a token, refuses every request without it; ?token= sets a cookie once', async () => {
    const secured = await startSqliteDashboard(db, { token: 'correct-horse-battery' });
    try {
      assert.equal((await send(`${secured.url}streams`)).status, 401);
      assert.equal((await send(`${secured.url}streams?token=wrong-token-here`)).status, 401);
      const opened = await send(`${secured.url}streams?prefix=order-&token=correct-horse-battery`);
      assert.equal(opened.status, 303);
      assert.equal(opened.headers.location, '/streams?prefix=order-');
      const cookie = String(opened.headers['set-cookie']).split(';')[0] ?? '';
      assert.match(String(opened.headers['set-cookie']), /HttpOnly/);
      assert.match(String(opened.headers['set-cookie']), /SameSite=Strict/);
      assert.equal((await send(`${secured.url}streams`, { headers: { Cookie: cookie } })).status, 200);
      const bearer = { Authorization: 'Bearer correct-horse-battery' };
      assert.equal((await send(`${secured.url}outbox`, { headers: bearer })).status, 200);
    } finally {
      await secured.close();
    }
  });

  it('refuses to listen beyond loopback without a token, and unknown options', async () => {
    await assert.rejects(
      startUi({ inspector: openSqliteInspector(db), openDeadLetterOperator: () => Promise.reject(), host: '0.0.0.0' }),
      /--host 0\.0\.0\.0 would let other machines in: give a --token too/,
    );
    await assert.rejects(
      startUi({
        inspector: openSqliteInspector(db),
        openDeadLetterOperator: () => Promise.reject(),
        prot: 1,
      } as never),
      /unknown ui option 'prot'/,
    );
    const run = await runFactline(['ui', '--host', '0.0.0.0', '--port', '0'], { db });
    assert.equal(run.code, 2);
    assert.equal(run.stderr, 'factline: --host 0.0.0.0 would let other machines in: give a --token too\n');
  });

  it('ends a live lag stream when the server closes: close() resolves with a browser still following', async () => {
    const live = await startSqliteDashboard(db);
    let received = '';
    const ended = new Promise<void>((resolve, reject) => {
      httpRequest(`${live.url}projections/live`, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          received += chunk;
        });
        res.on('close', () => resolve());
      })
        .on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve() : reject(error)))
        .end();
    });
    await waitUntil(() => received.includes('event: projections'), 'a first lag event');
    assert.match(received, /"name":"order_events_relay"/);
    await settlesWithin(Promise.all([live.close(), ended]), 10_000, 'close() and the end of the stream');
  });

  it('runs as `factline ui` from the bin until Ctrl-C', async () => {
    const bin = new URL('../bin.ts', import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      ['--conditions=factline-source', '--import', 'tsx', bin, 'ui', '--db', `sqlite:${db}`, '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const url = await waitUntil(
        () => /on (http:\/\/127\.0\.0\.1:\d+\/) /.exec(stdout)?.[1],
        'the bin listening',
        30_000,
      );
      assert.match(stdout, /^factline ui on http:\/\/127\.0\.0\.1:\d+\/ \(Ctrl-C to stop\)\n$/);
      const page = await send(`${url}streams?prefix=order-`);
      assert.equal(page.status, 200);
      assert.deepEqual(links(page.body, 'stream-link'), ['order-1001', 'order-1002', 'order-1003']);
      child.kill('SIGINT');
      assert.equal(await settlesWithin(exited, 10_000, 'the bin exiting on SIGINT'), 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
