import { isFactlineError, TransportError, ValidationError } from '@factline/core';
import { ErrorReply, RedisClient as NodeRedisClient } from 'redis';

type ClientMaker = ReturnType<typeof NodeRedisClient.factory>;

/** A node-redis client on RESP2 with no modules: what the transport and the inbox talk through. */
export type RedisClient = ReturnType<ClientMaker>;

/**
 * Makes a client of one class for every connection of the process. node-redis
 * builds a client class (a method for each of its commands, modules' and
 * transactions' included) for each set of options that differs from the last
 * one it saw (its cache holds one entry, compared as JSON), so connections
 * with their own names would each build one again: 60–130 ms of CPU and
 * megabytes of garbage per connection. Built once, on first use, with no
 * modules (the transport and the inbox send core commands only).
 */
let makeClient: ClientMaker | undefined;
function newClient(options: Parameters<ClientMaker>[0]): RedisClient {
  makeClient ??= NodeRedisClient.factory();
  return makeClient(options);
}

/** What the stores need of a connection: any node-redis client (RESP2 or RESP3) has it. */
export interface RedisCommandSender {
  sendCommand(args: string[]): Promise<unknown>;
}

/** The URL without its password, for messages and logs. */
export const redactUrl = (url: string) => url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');

/** Refuses a URL node-redis could not use, before any connection is tried. */
export function assertRedisUrl(url: string, where = 'getRedisTransport.url'): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError({ path: where, message: `is not a URL: '${redactUrl(url)}'` });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ValidationError({
      path: where,
      message: `must start with redis:// or rediss://, got '${parsed.protocol}//'`,
    });
  }
  if (parsed.hostname === '') {
    throw new ValidationError({ path: where, message: `names no host: '${redactUrl(url)}'` });
  }
}

/** A connection failure as a `TransportError`: refused credentials are not retryable, an outage is. */
export function connectionError(error: unknown, url: string): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const where = redactUrl(url);
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(text)) {
    return new TransportError(`Redis at ${where} refused the credentials: ${text}`, { cause: error, retryable: false });
  }
  return new TransportError(`Redis at ${where} is unreachable: ${text}`, { cause: error });
}

/** Replies of a server that cannot serve for now: loading its data, busy with a script, read-only, out of memory. */
const PASSING_REPLY = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|READONLY|OOM|CLUSTERDOWN)\b/;

/**
 * A failed command as its caller gets it: a Factline error as it is, anything
 * else a `TransportError` naming `what`, retryable when the connection or the
 * server's state was the cause (a command deadline, a dropped or closed
 * connection, a server loading), not when Redis refused the command itself (a
 * wrong type, no permission, a script error).
 *
 * @example
 * await writeMessages(client, keys, partitions, topic, messages).catch((error: unknown) => {
 *   throw commandError(error, `publishing to ${topic}`);
 * });
 */
export function commandError(error: unknown, what: string): unknown {
  if (isFactlineError(error)) return error;
  const text = error instanceof Error ? error.message : String(error);
  const refused = error instanceof ErrorReply && !PASSING_REPLY.test(text);
  return new TransportError(`${what} failed: ${text}`, { cause: error, retryable: !refused });
}

/** Backoff before reconnect attempt `n` (1-based): doubling from `min` to `max`, with up to 25% jitter. */
export function reconnectDelay(attempt: number, min: number, max: number, random = Math.random): number {
  const base = Math.min(max, min * 2 ** Math.min(attempt - 1, 20));
  return Math.round(base * (0.75 + random() * 0.25));
}

export interface OpenSettings {
  connectTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  name: string;
  /** Told the errors of a connection that was open once (it reconnects by itself). */
  onError(error: unknown): void;
}

/**
 * Opens one connection, failing with a typed error within `connectTimeoutMs`
 * when the server does not answer or refuses the credentials. Once open, it
 * reconnects by itself with backoff; commands sent meanwhile wait for it.
 */
export async function openClient(url: string, settings: OpenSettings): Promise<RedisClient> {
  let opened = false;
  let firstError: unknown;
  const client = newClient({
    url,
    name: settings.name,
    socket: {
      connectTimeout: settings.connectTimeoutMs,
      reconnectStrategy: (retries: number, cause: Error) => {
        if (!opened) return cause;
        return reconnectDelay(retries + 1, settings.reconnectMinMs, settings.reconnectMaxMs);
      },
    },
  });
  client.on('error', (error: unknown) => {
    if (opened) settings.onError(error);
    else firstError ??= error;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${settings.connectTimeoutMs} ms`)),
      settings.connectTimeoutMs,
    );
  });
  try {
    await Promise.race([client.connect(), timedOut]);
    opened = true;
    return client;
  } catch (error) {
    client.destroy();
    throw connectionError(firstError ?? error, url);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Which server a connection talks to: its `run_id` (`INFO server`), the same
 * for every connection to one running server whatever URL reached it
 * (`localhost` or `127.0.0.1`, a hostname or an address); where `INFO` is
 * refused (a proxy, an ACL) or gives no answer within `timeoutMs`, the URL as
 * given.
 */
export async function serverIdentity(client: RedisCommandSender, url: string, timeoutMs = 5000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    const info = await Promise.race([client.sendCommand(['INFO', 'server']), late]);
    const runId = /^run_id:([0-9a-f]+)\s*$/m.exec(String(info ?? ''))?.[1];
    if (runId) return `run_id ${runId}`;
  } catch {
    // Not allowed or not understood: the URL stands in.
  } finally {
    clearTimeout(timer);
  }
  return `url ${url}`;
}

/**
 * Closes a client: gracefully (what it sent is answered first) while it is
 * connected; at once while it is not, since nothing waiting in it could be
 * answered before node-redis's command deadline. Never throws.
 */
export async function closeClient(client: RedisClient): Promise<void> {
  if (client.isReady) await client.close().catch(() => destroyClient(client));
  else destroyClient(client);
}

/** Closes a client now, whatever it was doing (a blocked read included); never throws. */
export function destroyClient(client: RedisClient | undefined): void {
  try {
    if (client?.isOpen) client.destroy();
  } catch {
    // Closed already.
  }
}

/**
 * The keys matching `pattern` (a `SCAN … MATCH` glob), a batch at a time,
 * walking the keyspace with `SCAN` (never `KEYS`): a key may come twice,
 * as `SCAN` promises.
 *
 * @example
 * for await (const keys of scanKeys(client, 'shop:processed:*')) await client.sendCommand(['UNLINK', ...keys]);
 */
export async function* scanKeys(client: RedisCommandSender, pattern: string, count = 1000): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, found] = (await client.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)])) as [
      unknown,
      unknown[],
    ];
    cursor = String(next);
    if (found.length > 0) yield found.map(String);
  } while (cursor !== '0');
}
