import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isFactlineError } from '@factline/core';
import { startPrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { getRedisInbox } from './messaging/redis-inbox.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

// Servers the transport and the inbox cannot work on, each a private redis-server: a Redis Cluster node,
// a Sentinel, a replica. Each is refused when the transport or the inbox opens, with an error naming what
// the server is and what to give instead, and nothing is left open (the file's process ends on its own).
const modes = ['cluster', 'sentinel', 'replica'] as const;
const servers = await Promise.all(modes.map((mode) => startPrivateServer({ mode })));
const skip = servers.map((s) => ('reason' in s ? s.reason : '')).find(Boolean) || false;
after(async () => {
  await Promise.all(servers.map((s) => ('reason' in s ? undefined : s.stop())));
});

const expected: Record<(typeof modes)[number], RegExp> = {
  cluster: /is a Redis Cluster node \(redis_mode:cluster\): .*need a standalone server or a primary with replicas/,
  sentinel: /is a Redis Sentinel \(redis_mode:sentinel\): give the URL of the primary it monitors/,
  replica:
    /is a replica \(role:slave\), which takes no writes of its own: give the URL of its primary \(127\.0\.0\.1:1\)/,
};

const refusedWith = (pattern: RegExp) => (error: Error & { code?: string; retryable?: boolean }) => {
  assert.ok(isFactlineError(error), `a Factline error, got ${String(error)}`);
  assert.equal(error.code, 'TRANSPORT');
  assert.equal(error.retryable, false, error.message);
  assert.match(error.message, pattern);
  return true;
};

describe('servers the Redis transport and inbox cannot use', { skip }, () => {
  modes.forEach((mode, i) => {
    it(`a ${mode === 'cluster' ? 'Redis Cluster node' : mode} is refused when the transport and the inbox open`, async () => {
      const server = servers[i] as { url: string };
      const application = testApplication(`mode_${mode}`);
      await assert.rejects(
        getRedisTransport({ url: server.url, application, connectTimeoutMs: 3000 }),
        refusedWith(expected[mode]),
      );
      await assert.rejects(
        getRedisInbox({ url: server.url, application, connectTimeoutMs: 3000 }),
        refusedWith(expected[mode]),
      );
    });
  });
});
