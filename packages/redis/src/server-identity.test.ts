import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serverIdentity } from './connection.ts';

describe('serverIdentity', () => {
  it("is the server's run_id from INFO", async () => {
    const info = '# Server\r\nredis_version:7.0.15\r\nrun_id:0a1b2c3d4e5f\r\ntcp_port:6379\r\n';
    assert.equal(await serverIdentity({ sendCommand: async () => info }, 'redis://h:1'), 'run_id 0a1b2c3d4e5f');
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
