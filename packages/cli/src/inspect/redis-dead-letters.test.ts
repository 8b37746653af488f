import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { getRedisDeadLetterStore } from '@factline/redis';
import { createClient } from 'redis';
import { startPrivateServer } from '../../../redis/src/fixtures/private-server.ts';
import { deadLetterRecord } from '../fixtures/dead-letter.ts';
import { openRedisDeadLetterReader } from './redis-dead-letters.ts';

// A private redis-server keeping its data across a restart, so the shared one is never restarted.
const server = await startPrivateServer({ appendOnly: true });
const skip = 'reason' in server ? server.reason : false;
const application = 'shop';

after(async () => {
  if (!('reason' in server)) await server.stop();
});

describe("the dashboard's Redis dead-letter reader across a server restart", { skip }, () => {
  it('reads again once the server is back; the one-shot reader of the dlq commands does not reconnect', async () => {
    if ('reason' in server) return;
    const client = createClient({ url: server.url });
    client.on('error', () => undefined);
    await client.connect();
    await getRedisDeadLetterStore({ client, application }).add(deadLetterRecord('dead-1'));
    await client.close();

    const dashboard = await openRedisDeadLetterReader(server.url, application, { reconnect: true });
    const oneShot = await openRedisDeadLetterReader(server.url, application);
    try {
      assert.deepEqual(
        (await dashboard.list({})).map((r) => r.id),
        ['dead-1'],
      );
      await server.restart();
      // Asked while it reconnects, a read fails at once (nothing queued for later); then it reads again.
      const ids = await waitUntil(
        async () => (await dashboard.list({}).catch(() => undefined))?.map((r) => r.id),
        'the reader reading again after the restart',
        10_000,
        20,
      );
      assert.deepEqual(ids, ['dead-1']);
      await assert.rejects(oneShot.list({}), 'the one-shot reader stays closed after the drop');
    } finally {
      await dashboard.close();
      await oneShot.close();
    }
  });
});
