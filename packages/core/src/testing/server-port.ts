import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port the operating system hands out to outgoing connections (Linux: ip_local_port_range), or 32768. */
function ephemeralFloor(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const floor = Number(low);
    return Number.isInteger(floor) && floor > 2048 ? floor : 32768;
  } catch {
    return 32768;
  }
}

/** Resolves true when `port` could be listened on at 127.0.0.1 (and is free again). */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 for a private test server that is stopped
 * and started again on it: below the operating system's range for outgoing
 * connections, so that none of those takes it while the server is down (a
 * port `listen(0)` gives is in that range, and a restart then fails with
 * EADDRINUSE). Tries random ports between 10000 and that range; rejects after
 * 200 tries.
 *
 * @example
 * const port = await freeServerPort();
 * spawn('redis-server', ['--port', String(port)]);
 */
export async function freeServerPort(): Promise<number> {
  const floor = Math.max(10_001, ephemeralFloor());
  for (let tries = 0; tries < 200; tries++) {
    const port = 10_000 + Math.floor(Math.random() * (floor - 10_000));
    if (await isFree(port)) return port;
  }
  throw new Error(`no free port between 10000 and ${floor} after 200 tries`);
}
