import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../fixtures/server.ts';
import { getRedisInbox, type RedisInbox } from './redis-inbox.ts';

const skip = await redisUnavailable();
const application = testApplication('inbox');
const opened: RedisInbox[] = [];
const client = createClient({ url: redisUrl });
client.on('error', () => undefined);
if (!skip) await client.connect();

after(async () => {
  for (const inbox of opened) await inbox.close();
  if (!skip) {
    await client.close();
    await removeKeys(application);
  }
});

const open = async (options: { retentionMs?: number; claimMs?: number } = {}) => {
  const inbox = await getRedisInbox({ url: redisUrl, application, ...options });
  opened.push(inbox);
  return inbox;
};
const markKey = (consumer: string, id: string) => `${application}:processed:${consumer}:${id}`;

describe('getRedisInbox: claim, then mark once the handler succeeded', { skip }, () => {
  it('applies a message once: the second run finds the mark, kept for the retention (24 h by default)', async () => {
    const inbox = await open();
    let runs = 0;
    assert.equal(await inbox.applyOnce?.('billing', 'm1', new Date(), () => runs++), true);
    assert.equal(await inbox.applyOnce?.('billing', 'm1', new Date(), () => runs++), false);
    assert.equal(runs, 1);
    assert.equal(await inbox.has('billing', 'm1'), true);
    const ttl = Number(await client.sendCommand(['PTTL', markKey('billing', 'm1')]));
    assert.ok(ttl > 86_400_000 - 60_000 && ttl <= 86_400_000, `the mark lives 24 h, PTTL ${ttl}`);
  });

  it('a handler that fails clears its claim: the retry runs and marks', async () => {
    const inbox = await open();
    await assert.rejects(
      inbox.applyOnce?.('billing', 'm2', new Date(), () => {
        throw new Error('boom');
      }) ?? Promise.resolve(),
      /boom/,
    );
    assert.equal(await inbox.has('billing', 'm2'), false);
    assert.equal(await client.sendCommand(['EXISTS', markKey('billing', 'm2')]), 0, 'no claim left behind');
    let runs = 0;
    assert.equal(await inbox.applyOnce?.('billing', 'm2', new Date(), () => runs++), true);
    assert.equal(runs, 1);
  });

  it('a message claimed by a run in progress elsewhere fails this try with a retryable error', async () => {
    const inbox = await open({ claimMs: 300 });
    let finish: () => void = () => undefined;
    const first = inbox.applyOnce?.('billing', 'm3', new Date(), () => new Promise<void>((r) => (finish = r)));
    await waitUntil(
      async () => Number(await client.sendCommand(['EXISTS', markKey('billing', 'm3')])) === 1,
      'the claim',
    );
    await assert.rejects(inbox.applyOnce?.('billing', 'm3', new Date(), () => undefined) ?? Promise.resolve(), {
      code: 'TRANSPORT',
      retryable: true,
    });
    // The run in progress renews its claim: still claimed after twice its lifetime.
    const claimedAt = Date.now();
    await waitUntil(() => Date.now() - claimedAt > 700, 'two claim lifetimes');
    assert.equal(await client.sendCommand(['EXISTS', markKey('billing', 'm3')]), 1, 'the claim was renewed');
    finish();
    assert.equal(await first, true);
    assert.equal(await inbox.has('billing', 'm3'), true);
  });

  it('the claim of a process that died expires: another run applies the message', async () => {
    const inbox = await open({ claimMs: 200 });
    // A claim left by a run that never finished (its process died before the mark).
    await client.sendCommand(['SET', markKey('billing', 'm4'), 'c:dead-run', 'PX', '200']);
    let runs = 0;
    await waitUntil(async () => {
      try {
        return (await inbox.applyOnce?.('billing', 'm4', new Date(), () => runs++)) === true;
      } catch {
        return false;
      }
    }, 'the expired claim to free the message');
    assert.equal(runs, 1);
  });

  it('add, has and prune work on marks by their time; a mark past its retention is not written', async () => {
    const inbox = await open({ retentionMs: 60_000 });
    const now = Date.now();
    await inbox.add('shipping', 'old', new Date(now - 10_000));
    await inbox.add('shipping', 'gone', new Date(now - 120_000));
    await inbox.add('shipping', 'new', new Date(now));
    await inbox.prune(new Date(now - 5000));
    assert.deepEqual(
      [await inbox.has('shipping', 'old'), await inbox.has('shipping', 'gone'), await inbox.has('shipping', 'new')],
      [false, false, true],
    );
  });

  it('prune scans nothing for a time its marks outlive by their TTL (the consumer asks for 7 days, marks live 24 h)', async () => {
    const inbox = await open({ retentionMs: 60_000 });
    // A mark without a TTL (written by hand): only a scan would find it.
    await client.sendCommand(['SET', markKey('audit', 'kept'), `d:${Date.now() - 300_000}`]);
    await inbox.prune(new Date(Date.now() - 120_000));
    assert.equal(await inbox.has('audit', 'kept'), true, 'not scanned: every mark before that time expired by itself');
    await inbox.prune(new Date(Date.now() - 5000));
    assert.equal(await inbox.has('audit', 'kept'), false, 'a time within the retention is scanned for');
  });
});
