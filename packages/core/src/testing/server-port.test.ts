import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { it } from 'node:test';
import { freeServerPort } from './server-port.ts';

it('freeServerPort gives a port below the range of outgoing connections that a server can listen on', async () => {
  const range = (() => {
    try {
      return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    } catch {
      return 32768;
    }
  })();
  for (let i = 0; i < 5; i++) {
    const port = await freeServerPort();
    assert.ok(port >= 10_000 && port < range, `port ${port} below ${range}`);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  }
});
