import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { sharedInboxes } from '../fixtures/inbox.ts';
import { redisUrl } from '../fixtures/server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client, open, markKey } = await sharedInboxes('inbox-busy');

/**
 * Counts the claims Redis runs on `key` (the claim script's `SET … NX`), as `MONITOR` shows them: a run
 * waiting for another run's claim to end has looked at it once the count grew.
 */
const watchClaims = async (key: string) => {
  const monitor = createClient({ url: redisUrl });
  monitor.on('error', () => undefined);
  await monitor.connect();
  const seen = { claims: 0 };
  const quoted = `"SET" "${key}" `;
  await monitor.monitor((line) => {
    const text = String(line);
    if (text.includes(quoted) && text.includes('"NX"')) seen.claims += 1;
  });
  return { seen, close: () => monitor.close() };
};

describe('getRedisInbox: a message another run holds waits for that claim to end', { skip }, () => {
  it('a claim left by a run that died: the consumer runs the message once, after the claim expired, and dead-letters nothing (maxDeliveries 2)', async () => {
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const inbox = await open({ claimMs: 4000 });
    const errors: string[] = [];
    const ran: number[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'dead-run',
      transport,
      inbox,
      maxDeliveries: 2,
      handler: () => {
        ran.push(Date.now());
      },
      onError: (error, { stage }) => errors.push(`${stage}: ${String(error)}`),
    });
    try {
      await consumer.start();
      const message = createMessage({ type: 'A', key: 'k', data: {} });
      // A process that died mid-run left its claim with 3.5 s of its claimMs to go: each try turned away as
      // busy went back through the delayed set (1 s), counting a delivery, and the third exceeded maxDeliveries.
      const claimedAt = Date.now();
      await client.sendCommand(['SET', markKey('billing', message.id), 'c:dead-run.1', 'PX', '3500']);
      await transport.publish('dead-run', [message]);
      await waitUntil(
        () => consumer.stats().handled + consumer.stats().deadLettered > 0,
        'the message settled',
        10_000,
      );
      await consumer.stop();
      assert.deepEqual(
        { handled: consumer.stats().handled, deadLettered: consumer.stats().deadLettered, runs: ran.length },
        { handled: 1, deadLettered: 0, runs: 1 },
        errors.join('\n'),
      );
      assert.ok(
        (ran[0] as number) - claimedAt >= 3400,
        `ran once the dead run's claim expired: ${(ran[0] as number) - claimedAt} ms`,
      );
      assert.deepEqual(errors, [], 'no try was turned away');
      assert.match(String(await client.sendCommand(['GET', markKey('billing', message.id)])), /^d:/);
    } finally {
      await consumer.stop();
      await transport.close();
    }
  });

  it('a claim that becomes the mark while the run waits: the run is a duplicate, its handler never runs', async () => {
    const holder = await open({ claimMs: 60_000 });
    const waiter = await open({ claimMs: 2000 });
    const key = markKey('billing', 'marked-1');
    const watch = await watchClaims(key);
    try {
      let finish: () => void = () => undefined;
      const held = holder.applyOnce?.('billing', 'marked-1', new Date(), () => new Promise<void>((r) => (finish = r)));
      await waitUntil(() => watch.seen.claims === 1, "the holder's claim");
      let ran = 0;
      const waiting = waiter.applyOnce?.('billing', 'marked-1', new Date(), () => ran++) as Promise<boolean>;
      await waitUntil(() => watch.seen.claims >= 2, 'the waiting run to find the claim held');
      // The holder's handler ends: its claim becomes the mark.
      finish();
      assert.equal(await held, true);
      assert.equal(await waiting, false, 'a duplicate');
      assert.equal(ran, 0);
    } finally {
      await watch.close();
    }
  });

  it('a claim its run drops (its handler failed) while the run waits: the waiting run claims the message and runs it', async () => {
    const holder = await open({ claimMs: 60_000 });
    const waiter = await open({ claimMs: 2000 });
    const key = markKey('billing', 'dropped-1');
    const watch = await watchClaims(key);
    try {
      let fail: (error: Error) => void = () => undefined;
      const held = holder.applyOnce?.(
        'billing',
        'dropped-1',
        new Date(),
        () => new Promise<void>((_, reject) => (fail = reject)),
      ) as Promise<boolean>;
      await waitUntil(() => watch.seen.claims === 1, "the holder's claim");
      let ran = 0;
      const waiting = waiter.applyOnce?.('billing', 'dropped-1', new Date(), () => ran++) as Promise<boolean>;
      await waitUntil(() => watch.seen.claims >= 2, 'the waiting run to find the claim held');
      fail(new Error('handler failed'));
      await assert.rejects(held, /handler failed/);
      // The holder's claim lasts a minute: only a look after it was dropped runs the message within the case.
      assert.equal(await waiting, true);
      assert.equal(ran, 1);
      assert.match(String(await client.sendCommand(['GET', key])), /^d:/);
    } finally {
      await watch.close();
    }
  });

  it("close ends a run's wait at once: it rejects with a retryable error, its handler never ran", async () => {
    // A claim lasting a minute, and a wait bounded by a minute: only the close ends it within the case.
    const key = markKey('billing', 'closed-1');
    await client.sendCommand(['SET', key, 'c:dead-run.2', 'PX', '60000']);
    const waiter = await open({ claimMs: 60_000 });
    const watch = await watchClaims(key);
    try {
      let ran = 0;
      const waiting = waiter.applyOnce?.('billing', 'closed-1', new Date(), () => ran++) as Promise<boolean>;
      await waitUntil(() => watch.seen.claims >= 1, 'the waiting run to find the claim held');
      const closing = waiter.close();
      const error = await settlesWithin(
        waiting.then(
          (value) => assert.fail(`resolved ${value}`),
          (error: unknown) => error,
        ),
        2000,
        'the waiting run',
      );
      assert.match(String(error), /the Redis inbox closed while message closed-1 .* waited/);
      assert.equal((error as { retryable?: boolean }).retryable, true);
      await settlesWithin(closing, 2000, 'close()');
      assert.equal(ran, 0);
    } finally {
      await watch.close();
    }
  });
});
