import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeClient, openClient, type RedisClient } from '../connection.ts';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { createPendingClaims } from './pending-claims.ts';

let reader: RedisClient | undefined;
const { skip, application, client } = await sharedRedis('pending-claims', async () => {
  if (reader) await closeClient(reader);
});

describe('redis: the hand-outs a reader remembers of the entries it dropped', { skip }, () => {
  it('are bounded, the oldest let go first; a let-go entry claimed again counts what it carries', async () => {
    const stream = `${application}:stream:orders:0`;
    await client.sendCommand(['XGROUP', 'CREATE', stream, 'billing', '$', 'MKSTREAM']);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(String(await client.sendCommand(['XADD', stream, '*', 'm', `{}`])));
    // Read by this reader (pending under its name), then dropped when it lost the partition.
    await client.sendCommand(['XREADGROUP', 'GROUP', 'billing', 'reader-1', 'COUNT', '10', 'STREAMS', stream, '>']);
    // The reader's own kind of connection (the transport's), for the claims.
    reader = await openClient(redisUrl, {
      connectTimeoutMs: 3000,
      reconnectMinMs: 100,
      reconnectMaxMs: 1000,
      name: 'pending-claims-test',
      onError: () => undefined,
    });
    const pending = createPendingClaims({ client: reader, group: 'billing', consumer: 'reader-1', mostRemembered: 3 });
    pending.remember(0, [
      { id: ids[0] as string, count: 5, carried: 0 },
      { id: ids[1] as string, count: 6, carried: 0 },
      { id: ids[2] as string, count: 7, carried: 0 },
    ]);
    // Dropped again later: the newest now, so the one let go is ids[1], the oldest remembered.
    pending.remember(0, [
      { id: ids[0] as string, count: 8, carried: 0 },
      { id: ids[3] as string, count: 9, carried: 0 },
    ]);
    assert.equal(pending.remembered(), 3);
    const counts = new Map<string, number>();
    let cursor = '0-0';
    do {
      const page = await pending.claimPage(0, stream, cursor, 200);
      for (const [id, n] of page.counts) counts.set(id, n);
      cursor = page.next;
    } while (cursor !== '0-0');
    assert.deepEqual(
      ids.map((id) => counts.get(id)),
      [8, 0, 7, 9],
      'remembered counts, and the let-go entry counts what it carries (nothing)',
    );
    assert.equal(pending.remembered(), 0, 'claimed again: nothing left remembered');
  });
});
