import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisInbox } from './redis-inbox.ts';

const { skip, application, client } = await sharedRedis('inbox-lost-claim');

describe('getRedisInbox: a claim whose reply is lost', { skip }, () => {
  it('is deleted once the connection is back, so the retry runs at once instead of being turned away until it expires', async () => {
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    const errors: string[] = [];
    const inbox = await getRedisInbox({
      url: `redis://127.0.0.1:${forwarder.port}`,
      application,
      claimMs: 60_000,
      onError: (error, { stage }) => errors.push(`${stage}: ${String(error)}`),
    });
    try {
      const key = `${application}:processed:billing:m-1`;
      // The claim reaches Redis; its reply is held, then the connection reset before it comes back.
      forwarder.delayReplies(60_000);
      const ran: string[] = [];
      const first = inbox.applyOnce?.('billing', 'm-1', new Date(), async () => {
        ran.push('first');
      });
      await waitUntil(async () => (await client.sendCommand(['GET', key])) !== null, 'the claim written', 5000);
      forwarder.reset();
      forwarder.delayReplies(0);
      await assert.rejects(first as Promise<boolean>);
      // Deleted once reconnected: a claim no run renews would turn every try away for claimMs (60 s here).
      await waitUntil(async () => (await client.sendCommand(['GET', key])) === null, 'the lost claim deleted', 5000);
      assert.equal(
        await inbox.applyOnce?.('billing', 'm-1', new Date(), async () => {
          ran.push('retry');
        }),
        true,
      );
      assert.deepEqual(ran, ['retry']);
      assert.match(String(await client.sendCommand(['GET', key])), /^d:/);
    } finally {
      await inbox.close();
      await forwarder.close();
    }
  });
});
