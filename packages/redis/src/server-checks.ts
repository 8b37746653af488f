import { TransportError } from '@factline/core';
import { settledWithin } from '@factline/core/adapter';
import { type RedisCommandSender, redactUrl } from './connection.ts';

// What a server is, read off its INFO when the transport or the inbox opens: which one it is, and whether they
// can work on it.

/**
 * Which server and database a connection talks to: its `run_id` (`INFO`),
 * the same for every connection to one running server whatever URL reached
 * it (`localhost` or `127.0.0.1`, a hostname or an address), and the
 * database the URL selects (`/3`; 0 without one: keys of one database are
 * not seen from another); where `INFO` is refused (a proxy, an ACL) or gives
 * no answer within `timeoutMs`, the URL as given. A server the transport and the inbox cannot work on is refused here,
 * at open, rather than by the first command (see `unusableRedisServer`).
 */
export async function serverIdentity(
  client: RedisCommandSender,
  url: string,
  timeoutMs = 5000,
  { allowEviction = false }: { allowEviction?: boolean } = {},
): Promise<string> {
  // Not allowed, not understood or not answered in time: the URL stands in, and the server is taken as it is.
  const answer = client.sendCommand(['INFO']).then(String, () => '');
  const info = (await settledWithin(answer, timeoutMs)) ? await answer : '';
  const refusal = unusableRedisServer(info, url, { allowEviction });
  if (refusal) throw refusal;
  const runId = /^run_id:([0-9a-f]+)\s*$/m.exec(info)?.[1];
  return runId ? `run_id ${runId} db ${databaseOf(url)}` : `url ${url}`;
}

/** The database a `redis://` URL selects: its path's number (`/3`), 0 without one. */
function databaseOf(url: string): number {
  const path = new URL(url).pathname.slice(1);
  return path === '' ? 0 : Number(path);
}

/**
 * A non-retryable `TransportError` for a server, by its `INFO` text, that the
 * transport and the inbox cannot work on, or undefined: a server older than
 * Redis 7.0 (by its `redis_version`, which compatible servers report too), a Redis Cluster node
 * (their scripts use keys of several hash slots), a Sentinel (it stores
 * nothing; it names the primary), and unless `writes` is false a replica (it
 * takes no writes, or loses them at its next sync) and, unless `allowEviction`,
 * a server that evicts keys when full (a `maxmemory` with a
 * `maxmemory-policy` other than `noeviction`: it could drop streams, leases
 * or inbox marks). An empty `INFO` (refused by an ACL or a proxy) passes. The
 * transport and the inbox ask it when they open; a tool of its own (the CLI)
 * asks it of its connection.
 *
 * @example
 * const problem = unusableRedisServer(String(await client.sendCommand(['INFO'])), url, { writes: false });
 * if (problem) throw problem;
 */
export function unusableRedisServer(
  info: string,
  url: string,
  { writes = true, allowEviction = false }: { writes?: boolean; allowEviction?: boolean } = {},
): TransportError | undefined {
  const field = (name: string) => new RegExp(`^${name}:(.*?)\\s*$`, 'm').exec(info)?.[1];
  const where = redactUrl(url);
  const version = field('redis_version');
  const major = Number(version?.split('.')[0]);
  if (version !== undefined && Number.isInteger(major) && major < 7) {
    return new TransportError(
      `Redis at ${where} is version ${version} (redis_version:${version}): the Factline Redis transport and inbox need Redis 7.0 or later (their scripts claim with SET NX GET, and a group's lag comes from XINFO GROUPS, both 7.0)`,
      { retryable: false },
    );
  }
  const mode = field('redis_mode');
  if (mode === 'cluster') {
    return new TransportError(
      `Redis at ${where} is a Redis Cluster node (redis_mode:cluster): the Factline Redis transport and inbox need a standalone server or a primary with replicas (their scripts use keys of several hash slots)`,
      { retryable: false },
    );
  }
  if (mode === 'sentinel') {
    return new TransportError(
      `Redis at ${where} is a Redis Sentinel (redis_mode:sentinel): give the URL of the primary it monitors (SENTINEL GET-MASTER-ADDR-BY-NAME <name>)`,
      { retryable: false },
    );
  }
  if (writes && field('role') === 'slave') {
    const host = field('master_host');
    const port = field('master_port');
    return new TransportError(
      `Redis at ${where} is a replica (role:slave), which takes no writes of its own: give the URL of its primary${host ? ` (${host}:${port ?? '6379'})` : ''}`,
      { retryable: false },
    );
  }
  const policy = field('maxmemory_policy');
  const limit = field('maxmemory_human') ?? field('maxmemory');
  if (writes && !allowEviction && Number(field('maxmemory') ?? 0) > 0 && policy && policy !== 'noeviction') {
    const drops = policy.startsWith('volatile-')
      ? 'the keys with an expiry: partition leases (per-key order) and inbox marks (duplicates handled again)'
      : 'any key: streams (messages lost), leases and inbox marks';
    return new TransportError(
      `Redis at ${where} evicts keys when full (maxmemory ${limit}, maxmemory-policy ${policy}) and could drop ${drops}: set maxmemory-policy to noeviction (a full server then refuses writes, which are retried), or give allowEviction: true to accept it`,
      { retryable: false },
    );
  }
  return undefined;
}
