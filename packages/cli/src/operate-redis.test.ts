import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter, type DeadLetterStore } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { redisUnavailable, redisUrl, testApplication } from '../../redis/src/fixtures/server.ts';
import { assertOneLine } from './fixtures/assert-output.ts';
import { type BillingApplication, startBillingApplication } from './fixtures/redis-billing.ts';
import { runFactline, runJson } from './fixtures/run-factline.ts';

const skip = await redisUnavailable();
const application = testApplication('cli');
const args = (...rest: string[]) => [...rest, '--db', redisUrl, '--app', application];
const factline = (...rest: string[]) => runFactline(args(...rest));
const json = <T>(...rest: string[]) => runJson<T>(args(...rest));

describe('factline dlq on a Redis application', { skip }, () => {
  let billing: BillingApplication;
  let store: DeadLetterStore;
  const poison = [
    createMessage({ type: 'OrderPlaced', key: 'order-1', data: { order: 1 } }),
    createMessage({ type: 'OrderCancelled', key: 'order-2', data: { order: 2 } }),
  ];

  before(async () => {
    billing = await startBillingApplication(application, {
      refused: poison,
      accepted: [createMessage({ type: 'OrderPlaced', key: 'order-3', data: {} })],
    });
    store = billing.store;
  });

  after(() => billing?.close());

  it('ls and show read the application’s dead letters, with the filters and --json', async () => {
    const records = await json<DeadLetter[]>('dlq', 'ls');
    assert.deepEqual(
      records.map((r) => [r.consumer, r.topic, r.message.id]).sort(),
      [
        ['billing', 'orders', poison[0]?.id],
        ['billing', 'orders', poison[1]?.id],
      ].sort(),
    );
    const cancelled = await json<DeadLetter[]>('dlq', 'ls', '--type', 'OrderCancelled');
    assert.deepEqual(
      cancelled.map((r) => r.message.id),
      [poison[1]?.id],
    );
    assert.deepEqual(await json<DeadLetter[]>('dlq', 'ls', '--group', 'shipping'), []);
    const table = await factline('dlq', 'ls');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /billing\s+OrderPlaced\s+\S+\s+NonRetryableError: billing refuses OrderPlaced/);
    const id = (cancelled[0] as DeadLetter).id;
    const shown = await factline('dlq', 'show', id);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^dead letter ${id} \\(dead\\)`));
    assert.match(shown.stdout, new RegExp(`message   OrderCancelled ${poison[1]?.id}  key order-2`));
    const missing = await factline('dlq', 'show', 'no-such-id');
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /^factline: dead letter 'no-such-id' not found$/);
  });

  it('redrive puts the message back for its group through the Redis transport and marks the record', async () => {
    const record = (await store.list({ type: 'OrderPlaced' }))[0] as DeadLetter;
    billing.refused.delete(record.message.id);
    const redriven = await factline('dlq', 'redrive', record.id, '--yes');
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.equal(redriven.stdout.trim(), '1 dead letter redriven');
    await waitUntil(() => billing.handled.includes(record.message.id), 'the redriven message handled by billing');
    const after = (await store.get(record.id)) as DeadLetter;
    assert.equal(after.state, 'redriven');
    assert.equal(after.redrives.length, 1);
    const again = await factline('dlq', 'redrive', record.id, '--yes');
    assert.equal(again.code, 1);
    assertOneLine(again.stderr, new RegExp(`no dead letter to redrive: ${record.id} \\(already redriven\\)`));
  });

  it('discard marks the records matching a filter, kept and listed by state', async () => {
    const discarded = await factline('dlq', 'discard', '--all-matching', '--group', 'billing', '--yes');
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.equal(discarded.stdout.trim(), '1 dead letter discarded');
    const kept = await json<DeadLetter[]>('dlq', 'ls', '--state', 'discarded');
    assert.deepEqual(
      kept.map((r) => r.message.id),
      [poison[1]?.id],
    );
    assert.deepEqual(await json<DeadLetter[]>('dlq', 'ls'), []);
  });

  it('a redrive to a group not declared for the topic is refused and changes nothing', async () => {
    const record: DeadLetter = {
      ...((await store.list({ state: 'discarded' }))[0] as DeadLetter),
      id: 'ghost-record',
      consumer: 'ghost',
      state: 'dead',
      redrives: [],
    };
    await store.add(record);
    const refusedRun = await factline('dlq', 'redrive', record.id, '--yes');
    assert.equal(refusedRun.code, 2);
    assertOneLine(
      refusedRun.stderr,
      new RegExp(
        `cannot redrive ghost-record: group 'ghost' is not declared for topic 'orders' in the Redis application '${application}'`,
      ),
    );
    assert.equal((await store.get(record.id))?.state, 'dead');
  });
});

describe('factline dlq: a redis:// --db and its options', () => {
  it('needs --app (or FACTLINE_APP), and refuses a bad one', async () => {
    const missing = await runFactline(['dlq', 'ls', '--db', 'redis://127.0.0.1:6379']);
    assert.equal(missing.code, 2);
    assertOneLine(missing.stderr, /a redis:\/\/ --db needs the application: give --app <name>/);
    const bad = await runFactline(['dlq', 'ls', '--db', 'redis://127.0.0.1:6379', '--app', 'no spaces']);
    assert.equal(bad.code, 2);
    assertOneLine(bad.stderr, /--app must be 1 to 64 letters, digits, "-", "_" or "\.", got 'no spaces'/);
  });

  it('--app goes with a redis:// --db only; other commands refuse Redis and say why', async () => {
    const app = await runFactline(['dlq', 'ls', '--db', 'sqlite:./nothing.db', '--app', 'shop']);
    assert.equal(app.code, 2);
    assertOneLine(app.stderr, /^factline: --app applies to a redis:\/\/ --db, or with a --transport, only$/);
    const streams = await runFactline(['streams', 'ls', '--db', 'redis://user:secret@127.0.0.1:6379', '--app', 'shop']);
    assert.equal(streams.code, 2);
    assertOneLine(
      streams.stderr,
      /^factline: --db redis:\/\/user:\*\*\*@127\.0\.0\.1:6379: Redis holds an application's dead letters only: 'factline dlq' reads them/,
    );
  });

  it('a server that does not answer is a connection error, exit 2', async () => {
    // Port 1 on the loopback: refused at once, nothing listens there.
    const run = await runFactline(['dlq', 'ls', '--db', 'redis://127.0.0.1:1', '--app', 'shop']);
    assert.equal(run.code, 2);
    assertOneLine(run.stderr, /^factline: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: /);
  });
});
