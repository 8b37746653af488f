import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisKeys } from '@factline/redis';
import { createClient } from 'redis';
import { redisUnavailable, redisUrl, testApplication } from '../../../redis/src/fixtures/server.ts';
import { type BillingApplication, startBillingApplication } from '../fixtures/redis-billing.ts';
import { openRedisDeadLetterReader } from '../inspect/redis-dead-letters.ts';
import { runCli } from '../program.ts';
import { confirmForm } from './fixtures/confirm-form.ts';
import { startRedisDashboard } from './fixtures/redis-dashboard.ts';
import { type RunningUi, startUi } from './start-ui.ts';

const skip = await redisUnavailable();
const application = testApplication('ui');

/** The links of the page's navigation (the brand apart): `[href, label]`. */
const navigation = (html: string) =>
  [...(/<header>(.*)<\/header>/s.exec(html)?.[1] ?? '').matchAll(/<a href="([^"]*)"[^>]*>([^<]*)<\/a>/g)].map((m) => [
    m[1],
    m[2],
  ]);
const recordIds = (html: string) =>
  [...html.matchAll(/class="dead-letter-link" href="\/dead-letters\/([^"/]+)"/g)].map((m) => m[1]);
const stateOf = (html: string) => /id="dead-letter-state">(\w+)</.exec(html)?.[1];
const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
/** `'` as the pages escape it. */
const quoted = (text: string) => text.replace(/'/g, '&#39;');

describe('factline ui on a Redis application: the dead letters alone', { skip }, () => {
  const placed = createMessage({
    type: 'OrderPlaced',
    key: 'order-1',
    data: { order: 1 },
    metadata: { correlationId: 'checkout-1' },
  });
  const cancelled = createMessage({ type: 'OrderCancelled', key: 'order-2', data: { order: 2 } });
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 3000, reconnectStrategy: false } });
  let billing: BillingApplication;
  let ui: RunningUi;
  /** Record id by message id. */
  const recordIdOf = new Map<string, string>();

  before(async () => {
    billing = await startBillingApplication(application, {
      refused: [placed, cancelled],
      accepted: [createMessage({ type: 'OrderPlaced', key: 'order-3', data: {} })],
    });
    for (const record of await billing.store.list({})) recordIdOf.set(record.message.id, record.id);
    ui = await startRedisDashboard(application);
    await client.connect();
  });

  after(async () => {
    await ui?.close();
    await billing?.close();
    if (client.isOpen) await client.close();
  });

  const get = (path: string) => fetch(new URL(path, ui.url), { redirect: 'manual' });
  const html = async (path: string) => {
    const answer = await get(path);
    assert.equal(answer.status, 200, path);
    return answer.text();
  };
  /** The confirmation page's form sent as a browser sends it: from the dashboard's origin, with `csrf`. */
  const post = (path: string, form: string) =>
    fetch(new URL(path, ui.url), {
      method: 'POST',
      redirect: 'manual',
      headers: { Origin: new URL(ui.url).origin, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form,
    });
  const recordOf = async (message: { id: string }) =>
    (await billing.store.get(recordIdOf.get(message.id) ?? '')) as DeadLetter;
  /** Entries in the topic's two partition streams: a redrive adds one. */
  const streamEntries = async () => {
    const keys = redisKeys(application);
    return (await client.xLen(keys.stream('orders', 0))) + (await client.xLen(keys.stream('orders', 1)));
  };
  /** The confirmation page's form at `path` (its CSRF token and what it showed), as a browser sends it. */
  const csrfFrom = async (path: string) => {
    const page = await html(path);
    assert.ok(csrfOf(page), `a CSRF token on ${path}`);
    return confirmForm(page);
  };

  it('lists the dead letters by state and shows one; the navigation has Dead letters only', async () => {
    const home = await get('/');
    assert.equal(home.status, 302);
    assert.equal(home.headers.get('location'), '/dead-letters');

    const list = await html('/dead-letters');
    assert.deepEqual(navigation(list), [['/dead-letters', 'Dead letters']]);
    assert.match(list, /<a class="brand" href="\/dead-letters">/);
    assert.doesNotMatch(list, /correlationId/, 'no correlation-id search');
    const ids = recordIds(list);
    assert.deepEqual(new Set(ids), new Set([(await recordOf(placed)).id, (await recordOf(cancelled)).id]));
    assert.match(list, /billing refuses OrderPlaced/);
    assert.match(list, /billing refuses OrderCancelled/);
    assert.match(await html('/dead-letters?state=redriven'), /No redriven letter\./);

    const record = await recordOf(placed);
    const shown = await html(`/dead-letters/${record.id}`);
    assert.equal(stateOf(shown), 'dead');
    assert.match(shown, new RegExp(`OrderPlaced <span class="mono muted">${placed.id}</span>`));
    assert.match(shown, /<span class="mono">checkout-1<\/span>/, 'the correlation id, as text');
    assert.doesNotMatch(shown, /href="\/trace/, 'no link to a trace the dashboard does not have');
    assert.deepEqual(navigation(shown), [['/dead-letters', 'Dead letters']]);
    assert.equal((await get('/dead-letters/no-such-id')).status, 404);
  });

  it('answers 404 with the not-found page for the sections a Redis application has not', async () => {
    for (const path of [
      '/streams',
      '/stream?id=order-1',
      '/events/1',
      '/projections',
      '/projections/live',
      '/workflows',
      '/workflows/shipping/A1',
      '/outbox',
      '/trace?correlationId=checkout-1',
      '/trace.json?correlationId=checkout-1',
    ]) {
      const answer = await get(path);
      assert.equal(answer.status, 404, path);
      const body = await answer.text();
      assert.match(body, /<title>Not found · factline<\/title>/, path);
      assert.match(body, /No such page\./, path);
      assert.deepEqual(navigation(body), [['/dead-letters', 'Dead letters']], path);
    }
  });

  it('redrives behind the CSRF check: the message reaches billing, the record shows redriven', async () => {
    const record = await recordOf(placed);
    const csrf = await csrfFrom(`/dead-letters/${record.id}/redrive`);
    assert.equal((await post(`/dead-letters/${record.id}/redrive`, 'wrong')).status, 403);
    assert.equal((await recordOf(placed)).state, 'dead', 'a refused POST changes nothing');

    billing.refused.delete(placed.id);
    const done = await post(`/dead-letters/${record.id}/redrive`, csrf);
    assert.equal(done.status, 303);
    assert.equal(done.headers.get('location'), `/dead-letters/${record.id}`);
    await waitUntil(() => billing.handled.includes(placed.id), 'the redriven message handled by billing');
    assert.equal(stateOf(await html(`/dead-letters/${record.id}`)), 'redriven');
    assert.equal((await recordOf(placed)).redrives.length, 1);
    assert.deepEqual(recordIds(await html('/dead-letters?state=redriven')), [record.id]);
    assert.deepEqual(recordIds(await html('/dead-letters')), [(await recordOf(cancelled)).id]);

    const again = await post(`/dead-letters/${record.id}/redrive`, csrf);
    assert.equal(again.status, 409);
    assert.match(await again.text(), /Already redriven\./);
  });

  it('discards: the record shows discarded, nothing is delivered', async () => {
    const record = await recordOf(cancelled);
    const entries = await streamEntries();
    const done = await post(`/dead-letters/${record.id}/discard`, await csrfFrom(`/dead-letters/${record.id}/discard`));
    assert.equal(done.status, 303);
    assert.equal(stateOf(await html(`/dead-letters/${record.id}`)), 'discarded');
    assert.deepEqual(recordIds(await html('/dead-letters?state=discarded')), [record.id]);
    assert.match(await html('/dead-letters'), /No dead letter\./);
    assert.equal(await streamEntries(), entries, 'no message published');
    assert.ok(!billing.handled.includes(cancelled.id));
  });

  it('refuses a redrive to a group not declared for the topic with the reason (409), and changes nothing', async () => {
    const ghost: DeadLetter = {
      ...(await recordOf(cancelled)),
      id: 'ghost-record',
      consumer: 'ghost',
      state: 'dead',
      redrives: [],
    };
    await billing.store.add(ghost);
    const entries = await streamEntries();
    const refused = await post(
      '/dead-letters/ghost-record/redrive',
      await csrfFrom('/dead-letters/ghost-record/redrive'),
    );
    assert.equal(refused.status, 409);
    const body = await refused.text();
    assert.match(
      body,
      new RegExp(
        `<p class="notice">${quoted(`cannot redrive ghost-record: group 'ghost' is not declared for topic 'orders' in the Redis application '${application}'`)}</p>`,
      ),
    );
    assert.equal(stateOf(body), 'dead');
    const after = (await billing.store.get('ghost-record')) as DeadLetter;
    assert.equal(after.state, 'dead');
    assert.deepEqual(after.redrives, []);
    assert.equal(await streamEntries(), entries, 'no message published');
  });

  it('startUi takes a dead-letter reader or an inspector, one of them; a refusal closes the reader', async () => {
    const operator = () => Promise.reject(new Error('not opened'));
    const reader = await openRedisDeadLetterReader(redisUrl, application);
    await assert.rejects(
      startUi({ deadLetters: reader, openDeadLetterOperator: operator, workflows: { openStore: operator } }),
      /the ui has workflow pages over an inspector only/,
    );
    await assert.rejects(reader.list({}), /closed/i, 'the reader closed');
    await assert.rejects(
      startUi({ openDeadLetterOperator: operator } as never),
      /the ui needs an inspector \(a database\) or deadLetters \(dead letters alone\)/,
    );
  });
});

describe('factline ui: a redis:// --db and its options', () => {
  /** `factline <args>` in this process: its exit code and stderr. */
  async function run(...args: string[]) {
    const stderr: string[] = [];
    const code = await runCli(args, { cwd: process.cwd(), stdout: () => undefined, stderr: (l) => stderr.push(l) });
    return { code, stderr: stderr.join('\n') };
  }

  it('without --app: the error dlq gives, exit 2', async () => {
    const ui = await run('ui', '--db', 'redis://127.0.0.1:6379', '--port', '0');
    assert.equal(ui.code, 2);
    assert.match(ui.stderr, /^factline: a redis:\/\/ --db needs the application: give --app <name>/);
    assert.deepEqual(ui, await run('dlq', 'ls', '--db', 'redis://127.0.0.1:6379'));
  });

  it('refuses --transport before connecting, as dlq does: the error dlq gives, exit 2', async () => {
    // Port 1: nothing listens there; the refusal comes before any connection.
    const args = ['--db', 'redis://127.0.0.1:1', '--app', 'shop', '--transport', 'amqp://127.0.0.1'];
    const ui = await run('ui', ...args, '--port', '0');
    assert.equal(ui.code, 2, ui.stderr);
    assert.match(ui.stderr, /^factline: --transport applies to dead letters kept in a database/);
    assert.deepEqual(ui, await run('dlq', 'ls', ...args));
  });

  it('refuses --workflows: a Redis application keeps no workflows', async () => {
    const ui = await run('ui', '--db', 'redis://127.0.0.1:6379', '--app', 'shop', '--workflows', 'src/workflows.ts');
    assert.deepEqual(ui, {
      code: 2,
      stderr: 'factline: --workflows needs a sqlite: or postgres:// --db: a Redis application keeps no workflows',
    });
  });
});
