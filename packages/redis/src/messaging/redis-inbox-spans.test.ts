import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkHandlerSpans } from '../../../core/src/testing/fixtures/handler-spans.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisInbox } from './redis-inbox.ts';

const { skip, application } = await sharedRedis('inbox-spans', async () => undefined);

describe('getRedisInbox and spans', { skip }, () => {
  it("each handler runs under its own delivery's process span (claims and marks batched)", async () => {
    const inbox = await getRedisInbox({ url: redisUrl, application });
    try {
      assert.equal(await checkHandlerSpans(inbox, 'spans'), 8);
    } finally {
      await inbox.close();
    }
  });
});
