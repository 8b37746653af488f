import { isFactlineError, TransportError, ValidationError } from '@factline/core';
import { answerWithin, plainUrlToTlsPort, redactUrl, settledWithin, tlsHint } from '@factline/core/adapter';
import { ErrorReply, RedisClient as NodeRedisClient } from 'redis';
import { type RedisTlsOptions, redisTlsFailure, tlsSocket } from './tls.ts';

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

/** The URL without its secrets, for messages and logs (`@factline/core/adapter`'s). */
export { redactUrl };

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
  if (!/^\/?([0-9]+)?$/.test(parsed.pathname)) {
    throw new ValidationError({
      path: where,
      message: `selects database '${parsed.pathname.slice(1)}': the path is a database number (redis://host:6379/3), or nothing for 0`,
    });
  }
}

/** Refuses TLS settings for a URL that does not ask for TLS (`redis://`). */
export function assertTlsUrl(url: string, tls: RedisTlsOptions | undefined, where: string): void {
  if (tls !== undefined && new URL(url).protocol !== 'rediss:') {
    throw new ValidationError({ path: where, message: `is set, but the url is not rediss://: '${redactUrl(url)}'` });
  }
}

/**
 * A connection failure as a `TransportError`: refused credentials and a
 * failed TLS handshake (an untrusted or wrong certificate, a client
 * certificate the server requires or refuses) are not retryable, an outage is.
 */
export function connectionError(error: unknown, url: string): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const where = redactUrl(url);
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(text)) {
    return new TransportError(`Redis at ${where} refused the credentials: ${text}`, { cause: error, retryable: false });
  }
  const failure = redisTlsFailure(error);
  if (failure) {
    const code = (error as { code: string }).code;
    return new TransportError(
      `Redis at ${where}: the TLS handshake failed (${code}: ${text.trim()}); ${tlsHint(failure)}`,
      { cause: error, retryable: false },
    );
  }
  return new TransportError(`Redis at ${where} is unreachable: ${text}`, { cause: error });
}

/**
 * Replies of a server that cannot serve for now: loading its data, busy with a script, read-only, out of memory,
 * failing to persist (`MISCONF`), short of the replicas `min-replicas-to-write` asks for (`NOREPLICAS`).
 */
const PASSING_REPLY = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|READONLY|OOM|CLUSTERDOWN|MISCONF|NOREPLICAS)\b/;

/**
 * Whether `error` (or its cause, as `commandError` wraps it) is a reply of a
 * server that cannot serve for now (see `PASSING_REPLY`): worth sending the
 * command again on the same connection.
 */
export function isPassingReply(error: unknown): boolean {
  const reply = error instanceof ErrorReply ? error : error instanceof Error ? error.cause : undefined;
  return reply instanceof ErrorReply && PASSING_REPLY.test(reply.message);
}

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
  const hint = error instanceof ErrorReply ? STATE_HINTS.find(([reply]) => reply.test(text))?.[1] : undefined;
  return new TransportError(`${what} failed: ${text}${hint ? ` (${hint})` : ''}`, {
    cause: error,
    retryable: !refused,
  });
}

/** What a server-state reply most often means for an application, added to its error. */
const STATE_HINTS: [RegExp, string][] = [
  [/^READONLY\b/, 'the server is a replica now, as after a failover: the URL must name the primary'],
  [/^OOM\b/, 'the server is full (maxmemory, noeviction): writes are refused until memory is freed'],
  [/^MISCONF\b/, 'the server cannot write its RDB snapshot or AOF: writes are refused until it can persist again'],
  [
    /^NOREPLICAS\b/,
    'fewer replicas than min-replicas-to-write are connected: writes are refused until enough are back',
  ],
];

/** Backoff before reconnect attempt `n` (1-based): doubling from `min` to `max`, with up to 25% jitter. */
export function reconnectDelay(attempt: number, min: number, max: number, random = Math.random): number {
  const base = Math.min(max, min * 2 ** Math.min(attempt - 1, 20));
  return Math.round(base * (0.75 + random() * 0.25));
}

export interface OpenSettings {
  connectTimeoutMs: number;
  /** For a `rediss://` URL: the CA, client certificate and server name to use. */
  tls?: RedisTlsOptions | undefined;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  name: string;
  /**
   * How long commands may wait with nothing coming back before the connection
   * is taken for silently dead and made again (default `SILENCE_MS`; a
   * connection for blocking reads adds its longest block).
   */
  silentMs?: number;
  /** Told the errors of a connection that was open once (it reconnects by itself). */
  onError(error: unknown): void;
}

/**
 * How long commands may wait on a connection with nothing coming back before
 * it is dropped and made again. A server or a network that stops answering
 * without closing the connection (a host gone, a failover moving an address,
 * a middlebox dropping the flow) leaves it open until the operating system's
 * TCP timeout, many minutes, and node-redis gives a command already sent no
 * deadline of its own. Redis answers in milliseconds; 10 s of silence with
 * commands waiting is not a slow server.
 */
export const SILENCE_MS = 10_000;

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
      ...tlsSocket(settings.tls),
    },
  });
  client.on('error', (error: unknown) => {
    if (opened) settings.onError(error);
    else firstError ??= error;
  });
  try {
    await answerWithin(
      client.connect(),
      settings.connectTimeoutMs,
      () => new Error(`no answer within ${settings.connectTimeoutMs} ms`),
    );
    opened = true;
    watchReplies(client, url, settings.silentMs ?? SILENCE_MS, settings.onError);
    return client;
  } catch (error) {
    client.destroy();
    const cause = firstError ?? error;
    const plain = { server: 'Redis', scheme: 'redis', defaultPort: 6379, waitMs: settings.connectTimeoutMs };
    throw (await plainUrlToTlsPort(url, cause, plain)) ?? connectionError(cause, url);
  }
}

/** At most one reconnect a second per connection for `READONLY` replies. */
const REDIAL_EVERY_MS = 1000;

/** node-redis's own way to drop a connection and let it reconnect as after a network error (not public API). */
type Resettable = { _resetDesyncedConnection?: (error: Error) => void };

/**
 * Watches what comes back on a connection, and makes it again when:
 *
 * - its server answers `READONLY` (a replica now: a failover demoted it), at
 *   most once a second: where the URL names the primary by a name that
 *   follows failovers (a managed service's primary endpoint, a DNS record),
 *   the new connection reaches the new primary; where it names the old one,
 *   the replies stay `READONLY` and say so. The server is asked to close the
 *   connection (`QUIT`, answered `OK`, then closed: node-redis reconnects as
 *   after any drop, with its backoff, resolving the host again);
 * - commands have waited `silentMs` with nothing coming back (a server or a
 *   network gone silent without closing the connection): the connection is
 *   dropped on this side, through node-redis's internal reset (the public
 *   API has none); where a node-redis lacks it, the silence is only told.
 *
 * Either way `onError` is told, and commands in flight on the connection
 * fail, retryable. The transport's and the inbox's commands all go through
 * `sendCommand`.
 */
function watchReplies(client: RedisClient, url: string, silentMs: number, onError: (error: unknown) => void): void {
  const send = client.sendCommand.bind(client);
  let lastRedial = Number.NEGATIVE_INFINITY;
  const redial = (reply: string) => {
    const now = performance.now();
    if (now - lastRedial < REDIAL_EVERY_MS || !client.isReady) return;
    lastRedial = now;
    onError(
      new TransportError(
        `Redis at ${redactUrl(url)} answered ${reply.split(' ')[0]} (a replica now, as after a failover): reconnecting, to reach the primary where the URL follows it`,
      ),
    );
    send(['QUIT']).catch(() => undefined);
  };
  /**
   * Commands sent and not yet settled, and when the connection last showed life while one waited, on
   * `performance.now()` (monotonic: a wall clock stepped forward would take an answering connection for a silent one).
   */
  let waiting = 0;
  let lastSign = performance.now();
  const settled = () => {
    waiting -= 1;
    lastSign = performance.now();
  };
  client.sendCommand = ((...args: Parameters<typeof send>) => {
    if (waiting === 0) lastSign = performance.now();
    waiting += 1;
    return send(...args).then(
      (reply) => {
        settled();
        return reply;
      },
      (error: unknown) => {
        settled();
        if (error instanceof ErrorReply && /^READONLY\b/.test(error.message)) redial(error.message);
        throw error;
      },
    );
  }) as typeof client.sendCommand;
  const watch = setInterval(
    () => {
      if (!client.isOpen) {
        clearInterval(watch);
        return;
      }
      if (waiting === 0 || performance.now() - lastSign < silentMs) return;
      lastSign = performance.now();
      const reset = (client as Resettable)._resetDesyncedConnection;
      const silence = new TransportError(
        `Redis at ${redactUrl(url)} sent nothing back for ${silentMs} ms while ${waiting} command(s) waited: ${
          reset ? 'the connection is dropped and made again' : "it ends at the operating system's TCP timeout"
        }`,
      );
      // Dropped with this error, the connection tells it through its 'error' event (to onError), as any drop.
      if (reset) reset.call(client, silence);
      else onError(silence);
    },
    Math.max(10, Math.min(1000, Math.floor(silentMs / 4))),
  );
  watch.unref?.();
}

/**
 * How long closing waits for Redis to answer what was sent before dropping
 * the connection. A command already sent has no deadline of its own: a server
 * that stopped answering without closing the connection (its host gone, a
 * network dropping packets) would hold it until the operating system's TCP
 * timeout, many minutes.
 */
export const CLOSE_WAIT_MS = 5000;

/** What the transport or the inbox (`what`) tells `onError` when it closed without Redis answering in time. */
export const unansweredAtClose = (url: string, what: string) =>
  new TransportError(
    `Redis at ${redactUrl(url)} did not answer within ${CLOSE_WAIT_MS} ms while the ${what} closed: its connections were dropped`,
  );

/**
 * Closes a client: gracefully (what it sent is answered first) while it is
 * connected, dropping it when that takes longer than `waitMs`; at once while
 * it is not, since nothing waiting in it could be answered before node-redis's
 * command deadline. Resolves whether it closed in time; never throws.
 */
export async function closeClient(client: RedisClient, waitMs = CLOSE_WAIT_MS): Promise<boolean> {
  if (!client.isReady) {
    destroyClient(client);
    return true;
  }
  // Dropped, the client rejects what waits in it and ends, which settles its close(); except when its connection
  // failed while the close waited for answers (node-redis 6.4 then never ends it): the wait for that is bounded.
  const closing = client.close().catch(() => destroyClient(client));
  const inTime = await settledWithin(closing, waitMs);
  if (!inTime) {
    destroyClient(client);
    await settledWithin(closing, DROP_WAIT_MS);
  }
  return inTime;
}

/** How long `closeClient` waits for a dropped client's close() to settle: the drop is done by then either way. */
const DROP_WAIT_MS = 1000;

/**
 * Closes a client now, whatever it was doing (a blocked read included, or a
 * graceful close still waiting for answers: `isOpen` is false then, yet its
 * connection is up and must be torn down); never throws.
 */
export function destroyClient(client: RedisClient | undefined): void {
  try {
    client?.destroy();
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
/** `text` as a `SCAN … MATCH` glob matching itself only (`*`, `?`, `[`, `]` and `\\` escaped). */
export const globEscape = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

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
