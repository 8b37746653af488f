import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serverIdentity, unusableRedisServer } from './server-checks.ts';

describe('serverIdentity', () => {
  it("is the server's run_id from INFO", async () => {
    const info = '# Server\r\nredis_version:7.0.15\r\nrun_id:0a1b2c3d4e5f\r\ntcp_port:6379\r\n';
    assert.equal(await serverIdentity({ sendCommand: async () => info }, 'redis://h:1'), 'run_id 0a1b2c3d4e5f db 0');
    // Another database of the same server is another place: its keys are not seen from the first.
    assert.equal(await serverIdentity({ sendCommand: async () => info }, 'redis://h:1/3'), 'run_id 0a1b2c3d4e5f db 3');
  });

  it('falls back to the URL when INFO is refused, answers without a run_id, or does not answer in time', async () => {
    const url = 'redis://cache.internal:6379';
    const refused = {
      sendCommand: async () =>
        Promise.reject(new Error("NOPERM this user has no permissions to run the 'info' command")),
    };
    assert.equal(await serverIdentity(refused, url), `url ${url}`);
    assert.equal(await serverIdentity({ sendCommand: async () => '# Server\r\n' }, url), `url ${url}`);
    const silent = { sendCommand: () => new Promise<never>(() => undefined) };
    assert.equal(await serverIdentity(silent, url, 20), `url ${url}`);
  });
});

describe('unusableRedisServer', () => {
  const url = 'redis://user:secret@cache.internal:6379';
  it('accepts a standalone server and a primary with replicas', () => {
    assert.equal(unusableRedisServer('redis_mode:standalone\r\nrole:master\r\nconnected_slaves:2\r\n', url), undefined);
    assert.equal(unusableRedisServer('', url), undefined, 'INFO refused: the server is taken as it is');
  });

  it('refuses a cluster node, a sentinel and a replica, naming the primary of a replica, the password hidden', () => {
    const cluster = unusableRedisServer('redis_mode:cluster\r\nrole:master\r\n', url);
    assert.match(
      String(cluster?.message),
      /^Redis at redis:\/\/user:\*\*\*@cache\.internal:6379 is a Redis Cluster node/,
    );
    assert.equal(cluster?.retryable, false);
    assert.match(String(unusableRedisServer('redis_mode:sentinel\r\n', url)?.message), /is a Redis Sentinel/);
    const replica = unusableRedisServer(
      'redis_mode:standalone\r\nrole:slave\r\nmaster_host:10.0.0.7\r\nmaster_port:6380\r\n',
      url,
    );
    assert.match(String(replica?.message), /is a replica \(role:slave\).*its primary \(10\.0\.0\.7:6380\)$/);
    const replicaInfo = 'redis_mode:standalone\r\nrole:slave\r\n';
    assert.equal(unusableRedisServer(replicaInfo, url, { writes: false }), undefined, 'a replica serves reads');
    assert.match(String(unusableRedisServer('redis_mode:cluster\r\n', url, { writes: false })?.message), /Cluster/);
  });

  it('refuses a server older than Redis 7.0, also a compatible one that reports an older redis_version', () => {
    const old = unusableRedisServer('# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n', url);
    assert.match(
      String(old?.message),
      /^Redis at redis:\/\/user:\*\*\*@cache\.internal:6379 is version 6\.2\.14 \(redis_version:6\.2\.14\): .* need Redis 7\.0 or later/,
    );
    assert.equal(old?.retryable, false);
    assert.match(String(unusableRedisServer('redis_version:5.0.7\r\n', url, { writes: false })?.message), /5\.0\.7/);
    const compatible = 'redis_version:6.2.11\r\nserver_name:another\r\nredis_mode:standalone\r\n';
    assert.match(String(unusableRedisServer(compatible, url)?.message), /version 6\.2\.11/);
    for (const version of ['7.0.0', '7.0.15', '7.2.4', '8.0.2', '10.1.0']) {
      assert.equal(
        unusableRedisServer(`redis_version:${version}\r\nredis_mode:standalone\r\n`, url),
        undefined,
        version,
      );
    }
    const valkey = 'redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\nredis_mode:standalone\r\n';
    assert.equal(unusableRedisServer(valkey, url), undefined, 'Valkey reports redis_version 7.2.4');
    assert.equal(unusableRedisServer('redis_version:unknown\r\n', url), undefined, 'a version not read is not refused');
  });

  it('refuses a server that evicts keys when full unless allowEviction, saying what it could drop', () => {
    const evicting = (policy: string, maxmemory = '67108864') =>
      `redis_mode:standalone\r\nrole:master\r\nmaxmemory:${maxmemory}\r\nmaxmemory_human:64.00M\r\nmaxmemory_policy:${policy}\r\n`;
    const allKeys = unusableRedisServer(evicting('allkeys-lru'), url);
    assert.match(
      String(allKeys?.message),
      /evicts keys when full \(maxmemory 64\.00M, maxmemory-policy allkeys-lru\) and could drop any key: streams \(messages lost\).*noeviction.*allowEviction: true/,
    );
    assert.equal(allKeys?.retryable, false);
    assert.match(
      String(unusableRedisServer(evicting('volatile-ttl'), url)?.message),
      /partition leases .* inbox marks/,
    );
    assert.equal(unusableRedisServer(evicting('noeviction'), url), undefined);
    assert.equal(unusableRedisServer(evicting('allkeys-lru', '0'), url), undefined, 'no maxmemory: nothing is evicted');
    assert.equal(unusableRedisServer(evicting('allkeys-lru'), url, { allowEviction: true }), undefined);
    assert.equal(unusableRedisServer(evicting('allkeys-lru'), url, { writes: false }), undefined, 'reads only');
  });
});
