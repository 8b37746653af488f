import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage, type Delivery } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { sharedInboxes } from '../fixtures/inbox.ts';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { redisUrl, removeKeys } from '../fixtures/server.ts';
import { serverIdentity } from '../server-checks.ts';
import { type AckTarget, ackWithMark } from './ack-with-mark.ts';
import { getRedisInbox, type RedisInboxErrorStage } from './redis-inbox.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client, open, markKey } = await sharedInboxes('inbox');
/** The same server's URL spelt the other way (127.0.0.1 ↔ localhost), when it is one of them. */
const otherSpelling = redisUrl.includes('127.0.0.1')
  ? redisUrl.replace('127.0.0.1', 'localhost')
  : redisUrl.replace('localhost', '127.0.0.1');
/** The server identity a transport opened with `url` would give its deliveries. */
const identityThrough = async (url: string) => {
  const other = createClient({ url });
  other.on('error', () => undefined);
  await other.connect();
  try {
    return await serverIdentity(other, url);
  } finally {
    await other.close();
  }
};

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

  it('a message claimed by a run in progress elsewhere fails this try with a retryable error once it waited claimMs', async () => {
    const inbox = await open({ claimMs: 300 });
    let finish: () => void = () => undefined;
    const first = inbox.applyOnce?.('billing', 'm3', new Date(), () => new Promise<void>((r) => (finish = r)));
    await waitUntil(
      async () => Number(await client.sendCommand(['EXISTS', markKey('billing', 'm3')])) === 1,
      'the claim',
    );
    const from = Date.now();
    await assert.rejects(
      inbox.applyOnce?.('billing', 'm3', new Date(), () => assert.fail('ran')) ?? Promise.resolve(),
      {
        code: 'TRANSPORT',
        retryable: true,
        message:
          /message m3 is being handled by another run of consumer 'billing' \(its claim still held after \d+ ms, claimMs 300\)/,
      },
    );
    assert.ok(Date.now() - from >= 300, `waited for the claim to end first: ${Date.now() - from} ms`);
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
    await inbox.prune(new Date(now - 5000), 'shipping');
    assert.deepEqual(
      [await inbox.has('shipping', 'old'), await inbox.has('shipping', 'gone'), await inbox.has('shipping', 'new')],
      [false, false, true],
    );
  });

  it('consumers whose names hold `:` keep marks of their own, and prune only their own', async () => {
    const inbox = await open({ retentionMs: 60_000 });
    const now = Date.now();
    await inbox.add('audit', 'eu:m1', new Date(now - 10_000));
    await inbox.add('audit:eu', 'm1', new Date(now - 10_000));
    assert.equal(await inbox.has('audit:eu', 'm2'), false);
    await inbox.add('audit', 'eu:m2', new Date(now));
    assert.equal(await inbox.has('audit:eu', 'm2'), false, "another consumer's mark");
    await inbox.prune(new Date(now - 5000), 'audit');
    assert.equal(await inbox.has('audit', 'eu:m1'), false);
    assert.equal(await inbox.has('audit:eu', 'm1'), true, "not pruned with another consumer's marks");
  });

  it('prune scans nothing for a time its marks outlive by their TTL (the consumer asks for 7 days, marks live 24 h)', async () => {
    const inbox = await open({ retentionMs: 60_000 });
    // A mark without a TTL (written by hand): only a scan would find it.
    await client.sendCommand(['SET', markKey('audit', 'kept'), `d:${Date.now() - 300_000}`]);
    await inbox.prune(new Date(Date.now() - 120_000), 'audit');
    assert.equal(await inbox.has('audit', 'kept'), true, 'not scanned: every mark before that time expired by itself');
    await inbox.prune(new Date(Date.now() - 5000), 'audit');
    assert.equal(await inbox.has('audit', 'kept'), false, 'a time within the retention is scanned for');
  });

  it('marks of one turn ack their entries per partition: a partition whose lease moved gets neither marks nor acks, the others both', async () => {
    const inbox = await open();
    const stream = (p: number) => `${application}:stream:marks:${p}`;
    const lease = (p: number) => `${application}:lease:marks:billing:${p}`;
    const ids: string[][] = [[], []];
    for (const p of [0, 1]) {
      await client.sendCommand(['XGROUP', 'CREATE', stream(p), 'billing', '$', 'MKSTREAM']);
      for (let i = 0; i < 3; i++) ids[p]?.push(String(await client.sendCommand(['XADD', stream(p), '*', 'm', 'x'])));
      await client.sendCommand(['XREADGROUP', 'GROUP', 'billing', 'reader-a', 'STREAMS', stream(p), '>']);
    }
    // Partition 0 is still reader-a's; partition 1 moved to reader-b while the runs were in progress.
    await client.sendCommand(['SET', lease(0), 'reader-a', 'PX', '60000']);
    await client.sendCommand(['SET', lease(1), 'reader-b', 'PX', '60000']);
    // The deliveries come from a transport that reached the server by another URL: the server is the same.
    const server = await identityThrough(otherSpelling);
    assert.match(server, /^run_id [0-9a-f]+ db [0-9]+$/);
    assert.equal(server, await serverIdentity(client, redisUrl));
    const targets: AckTarget[] = [0, 1].map((p) => ({
      server,
      stream: stream(p),
      group: 'billing',
      lease: lease(p),
      token: 'reader-a',
    }));
    const outcomes: string[] = [];
    const delivery = (p: number, i: number) =>
      ({
        [ackWithMark]: {
          target: targets[p],
          id: ids[p]?.[i],
          current: () => true,
          acked: () => outcomes.push(`acked ${p}/${i}`),
          fenced: () => outcomes.push(`fenced ${p}/${i}`),
        },
      }) as unknown as Delivery;
    const runs: (Promise<boolean> | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      for (const p of [0, 1]) {
        runs.push(inbox.applyOnce?.('billing', `m-${p}-${i}`, new Date(), () => undefined, delivery(p, i)));
      }
    }
    runs.push(inbox.applyOnce?.('billing', 'm-plain', new Date(), () => undefined));
    assert.deepEqual(await Promise.all(runs), [true, true, true, true, true, true, true]);
    assert.deepEqual(outcomes.sort(), [
      'acked 0/0',
      'acked 0/1',
      'acked 0/2',
      'fenced 1/0',
      'fenced 1/1',
      'fenced 1/2',
    ]);
    const pending = async (p: number) =>
      Number(((await client.sendCommand(['XPENDING', stream(p), 'billing'])) as [number])[0]);
    assert.equal(await pending(0), 0, "partition 0's entries acked");
    assert.equal(await pending(1), 3, "partition 1's entries left to its new holder");
    for (let i = 0; i < 3; i++) {
      assert.equal(await inbox.has('billing', `m-0-${i}`), true);
      assert.equal(await client.sendCommand(['EXISTS', markKey('billing', `m-1-${i}`)]), 0, 'no mark, no claim left');
    }
    assert.equal(await inbox.has('billing', 'm-plain'), true, 'a mark with no ack is written as well');
  });

  it("an inbox on another database of the transport's server marks, and the consumer acks, each message once", async () => {
    const other = new URL(redisUrl);
    other.pathname = `/${Number(other.pathname.slice(1) || 0) === 7 ? 8 : 7}`;
    const inbox = await open({ url: other.href });
    assert.notEqual(await identityThrough(other.href), await serverIdentity(client, redisUrl));
    const lost: unknown[] = [];
    const transport = await getRedisTransport({
      url: redisUrl,
      application,
      partitions: 1,
      leaseMs: 1000,
      onError: (error, { stage }) => {
        if (stage === 'lease') lost.push(error);
      },
    });
    let runs = 0;
    const consumer = createConsumer({
      name: 'other-db',
      topic: 'other-db',
      transport,
      inbox,
      pollMs: 5,
      handler: () => {
        runs += 1;
      },
    });
    try {
      await consumer.start();
      await transport.publish('other-db', [createMessage({ type: 'Placed', key: 'k', data: {} })]);
      await waitUntil(
        async () => (await transport.backlog?.('other-db', 'other-db'))?.messages === 0,
        'the entry acked',
      );
      assert.equal(runs, 1);
      assert.deepEqual(lost, [], 'no lease taken for lost at the mark');
    } finally {
      await consumer.stop();
      await transport.close();
      await removeKeys(application, other.href);
    }
  });
});

describe('getRedisInbox: failures outside a run are told to onError', { skip }, () => {
  const told = () => {
    const errors: { error: unknown; stage: RedisInboxErrorStage }[] = [];
    return {
      errors,
      onError: (error: unknown, { stage }: { stage: RedisInboxErrorStage }) => errors.push({ error, stage }),
    };
  };

  it('a claim gone before its renewal (expired, another run holds it) is reported once, naming the message', async () => {
    const { errors, onError } = told();
    const inbox = await open({ claimMs: 150, onError });
    let finish: () => void = () => undefined;
    const run = inbox.applyOnce?.('billing', 'lost-1', new Date(), () => new Promise<void>((r) => (finish = r)));
    await waitUntil(
      async () => Number(await client.sendCommand(['EXISTS', markKey('billing', 'lost-1')])) === 1,
      'the claim',
    );
    // Another run's claim in its place, as after this run's claim ran out.
    await client.sendCommand(['SET', markKey('billing', 'lost-1'), 'c:another-run', 'PX', '60000']);
    await waitUntil(() => errors.length > 0, 'the renewal to find the claim gone');
    const renewalsBefore = Date.now();
    await waitUntil(() => Date.now() - renewalsBefore > 300, 'several more renewals');
    assert.equal(errors.length, 1, 'reported once per run');
    assert.equal(errors[0]?.stage, 'renew');
    assert.match(String(errors[0]?.error), /claim of message lost-1 by consumer 'billing' ran out/);
    finish();
    assert.equal(await run, true);
    assert.equal(
      await client.sendCommand(['GET', markKey('billing', 'lost-1')]),
      'c:another-run',
      'the other run keeps it',
    );
  });

  it('a run whose claim ran out unseen (its event loop blocked past claimMs) still marks the message, and says so once', async () => {
    const { errors, onError } = told();
    const inbox = await open({ claimMs: 200, onError });
    // A synchronous handler holding the event loop twice the claim's life: no renewal runs meanwhile.
    const applied = await inbox.applyOnce?.('billing', 'blocked-1', new Date(), () => {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
    });
    assert.equal(applied, true);
    assert.match(String(await client.sendCommand(['GET', markKey('billing', 'blocked-1')])), /^d:/, 'marked');
    const again = await inbox.applyOnce?.('billing', 'blocked-1', new Date(), () => assert.fail('ran again'));
    assert.equal(again, false, 'a later copy of the message is a duplicate');
    assert.equal(errors.length, 1, `told once: ${errors.map((e) => String(e.error)).join('; ')}`);
    assert.equal(errors[0]?.stage, 'renew');
    assert.match(String(errors[0]?.error), /claim of message blocked-1 by consumer 'billing' ran out/);
  });

  it("a run whose claim another run took before any renewal saw it leaves that run's claim, and says so once", async () => {
    const { errors, onError } = told();
    const inbox = await open({ onError });
    const applied = await inbox.applyOnce?.('billing', 'taken-1', new Date(), async () => {
      // As after this run's claim ran out: another run claims the message (its renewals are 3.3 s apart).
      await client.sendCommand(['SET', markKey('billing', 'taken-1'), 'c:another-run', 'PX', '60000']);
    });
    assert.equal(applied, true);
    assert.equal(
      await client.sendCommand(['GET', markKey('billing', 'taken-1')]),
      'c:another-run',
      'the other run keeps it',
    );
    assert.equal(errors.length, 1, 'told once');
    assert.equal(errors[0]?.stage, 'renew');
    assert.match(String(errors[0]?.error), /claim of message taken-1 by consumer 'billing' ran out/);
  });

  it("a run whose claim ran out, ending while a second run of the message here holds it, leaves the second run's claim renewed", async () => {
    const inbox = await open({ claimMs: 150 });
    let finishFirst: () => void = () => undefined;
    const first = inbox.applyOnce?.(
      'billing',
      'twice-1',
      new Date(),
      () => new Promise<void>((r) => (finishFirst = r)),
    );
    await waitUntil(
      async () => Number(await client.sendCommand(['EXISTS', markKey('billing', 'twice-1')])) === 1,
      'the first claim',
    );
    // The first run's claim runs out (deleted here, as if its renewals had not reached Redis): a second run claims it.
    await client.sendCommand(['DEL', markKey('billing', 'twice-1')]);
    let finishSecond: () => void = () => undefined;
    const second = inbox.applyOnce?.(
      'billing',
      'twice-1',
      new Date(),
      () => new Promise<void>((r) => (finishSecond = r)),
    );
    await waitUntil(
      async () => Number(await client.sendCommand(['EXISTS', markKey('billing', 'twice-1')])) === 1,
      'the second claim',
    );
    finishFirst();
    await first;
    // Several claim times on, the second run's claim is still renewed: a third run is turned away.
    const from = Date.now();
    await waitUntil(() => Date.now() - from > 500, 'three claim times');
    await assert.rejects(
      inbox.applyOnce?.('billing', 'twice-1', new Date(), () => undefined) as Promise<boolean>,
      /being handled by another run/,
    );
    finishSecond();
    assert.equal(await second, true);
  });

  it("a failed run's claim that cannot be deleted is reported as 'settle'; the handler's error is the run's", async () => {
    const { errors, onError } = told();
    const inbox = await open({ onError });
    const key = markKey('billing', 'settle-1');
    await assert.rejects(
      inbox.applyOnce?.('billing', 'settle-1', new Date(), async () => {
        // The claim's key made a hash: the script deleting the claim fails on it.
        await client.sendCommand(['DEL', key]);
        await client.sendCommand(['HSET', key, 'f', 'v']);
        throw new Error('handler failed');
      }) ?? Promise.resolve(),
      /handler failed/,
    );
    assert.deepEqual(
      errors.map((e) => e.stage),
      ['settle'],
    );
    assert.match(String(errors[0]?.error), /WRONGTYPE/);
  });

  it("a run whose mark fails drops its claim, so the retry runs at once; the failure is reported as 'settle'", async () => {
    const { errors, onError } = told();
    // A claim lasting a minute: a retry turned away by it would not run within this case.
    const inbox = await open({ claimMs: 60_000, onError });
    // The partition's lease key made a hash: the mark script fails on it (as any failure of the mark call).
    const lease = `${application}:lease:marked:billing:0`;
    await client.sendCommand(['HSET', lease, 'f', 'v']);
    const delivery = {
      [ackWithMark]: {
        target: {
          server: await serverIdentity(client, redisUrl),
          stream: `${application}:stream:marked:0`,
          group: 'billing',
          lease,
          token: 'reader-a',
        },
        id: '1-0',
        current: () => true,
        acked: () => undefined,
        fenced: () => undefined,
      },
    } as unknown as Delivery;
    let runs = 0;
    await assert.rejects(
      inbox.applyOnce?.('billing', 'unmarked-1', new Date(), () => runs++, delivery) ?? Promise.resolve(),
      /WRONGTYPE/,
    );
    assert.equal(await client.sendCommand(['EXISTS', markKey('billing', 'unmarked-1')]), 0, 'no claim left behind');
    assert.equal(await inbox.applyOnce?.('billing', 'unmarked-1', new Date(), () => runs++), true, 'the retry ran');
    assert.equal(runs, 2);
    assert.deepEqual(
      errors.map((e) => e.stage),
      ['settle'],
    );
    assert.match(
      String(errors[0]?.error),
      /the mark of message unmarked-1 by consumer 'billing' failed after its handler ran.*its claim was dropped.*WRONGTYPE/,
    );
  });

  it("a run whose mark fails and whose claim cannot be dropped either reports both as 'settle'", async () => {
    const { errors, onError } = told();
    const inbox = await open({ onError });
    const key = markKey('billing', 'unmarked-2');
    await assert.rejects(
      inbox.applyOnce?.('billing', 'unmarked-2', new Date(), async () => {
        // The claim's key made a hash: the mark script fails on it, and so does the one deleting the claim.
        await client.sendCommand(['DEL', key]);
        await client.sendCommand(['HSET', key, 'f', 'v']);
      }) ?? Promise.resolve(),
      /marking 1 messages in the Redis inbox failed: WRONGTYPE/,
    );
    assert.deepEqual(
      errors.map((e) => e.stage),
      ['settle', 'settle'],
    );
    assert.match(String(errors[0]?.error), /dropping the claim of unmarked-2 in the Redis inbox failed: WRONGTYPE/);
    assert.match(String(errors[1]?.error), /the mark of message unmarked-2 .*its claim stays until it expires/);
  });

  it("a dropped connection is reported as 'connection'; close resolves", async (t) => {
    const server = await startPrivateServer();
    if ('reason' in server) {
      t.skip(server.reason);
      return;
    }
    try {
      const { errors, onError } = told();
      const inbox = await getRedisInbox({ url: server.url, application, onError });
      assert.equal(await inbox.applyOnce?.('billing', 'c-1', new Date(), () => undefined), true);
      await server.stop();
      await waitUntil(() => errors.some((e) => e.stage === 'connection'), 'the dropped connection reported');
      await inbox.close();
    } finally {
      await server.stop();
    }
  });
});
