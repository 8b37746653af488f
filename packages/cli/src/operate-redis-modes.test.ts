import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startPrivateServer } from '../../redis/src/fixtures/private-server.ts';
import { testApplication } from '../../redis/src/fixtures/server.ts';
import { runFactline } from './fixtures/run-factline.ts';

// `factline dlq` pointed at a Redis it cannot use (private servers): a Redis Cluster node and a Sentinel
// are refused for every command, a replica for the commands that write (it serves `ls`). A server that evicts
// keys is the application transport's to refuse: the operator still works on its dead letters there.
const [cluster, sentinel, replica, evicting] = await Promise.all([
  ...(['cluster', 'sentinel', 'replica'] as const).map((mode) => startPrivateServer({ mode })),
  startPrivateServer({ maxmemoryPolicy: 'allkeys-lru' }),
]);
const servers = [cluster, sentinel, replica, evicting];
const skip = servers.map((s) => (s && 'reason' in s ? s.reason : '')).find(Boolean) || false;
after(async () => {
  await Promise.all(servers.map((s) => (s && !('reason' in s) ? s.stop() : undefined)));
});

const urlOf = (server: (typeof servers)[number]) => (server as { url: string }).url;
const application = testApplication('cli-modes');
const dlq = (server: (typeof servers)[number], ...args: string[]) =>
  runFactline(['dlq', ...args, '--db', urlOf(server), '--app', application]);

/** Exit 2 and one line on stderr matching `pattern`. */
const refused = (result: { code: number | null; stderr: string }, pattern: RegExp) => {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.match(result.stderr, pattern);
};

describe('factline dlq on a Redis it cannot use', { skip }, () => {
  it('a Redis Cluster node and a Sentinel are refused, naming what they are', async () => {
    refused(await dlq(cluster, 'ls'), /is a Redis Cluster node \(redis_mode:cluster\)/);
    refused(await dlq(sentinel, 'ls'), /is a Redis Sentinel \(redis_mode:sentinel\): give the URL of the primary/);
  });

  it('a replica serves the listing; a redrive or a discard is refused, naming its primary', async () => {
    const listed = await dlq(replica, 'ls', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), []);
    const pattern =
      /is a replica \(role:slave\), which takes no writes of its own: give the URL of its primary \(127\.0\.0\.1:1\)/;
    refused(await dlq(replica, 'redrive', 'dl-1', '--yes'), pattern);
    refused(await dlq(replica, 'discard', 'dl-1', '--yes'), pattern);
  });

  it('a server that evicts keys when full is not refused: the listing and a discard reach its dead letters', async () => {
    const listed = await dlq(evicting, 'ls', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), []);
    const discarded = await dlq(evicting, 'discard', 'dl-1', '--yes');
    assert.equal(discarded.code, 1, discarded.stderr);
    assert.equal(discarded.stderr.trim(), 'factline: no dead letter to discard: dl-1');
  });
});
