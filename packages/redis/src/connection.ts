import { isFactlineError, TransportError, ValidationError } from '@factline/core';
import { describeValue } from '@factline/core/adapter';
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

/**
 * The TLS settings of a `rediss://` connection, as PEM text (the files'
 * contents, not their paths). Without `ca` the server's certificate must chain
 * to a CA Node trusts: its bundled ones, plus those of `NODE_EXTRA_CA_CERTS`.
 */
export interface RedisTlsOptions {
  /** The certificate authorities that sign the server's certificate, replacing Node's bundled ones for this connection. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** The client's certificate, for a server that verifies clients (Redis's `tls-auth-clients yes`, its default). With `key`. */
  cert?: string | Buffer;
  /** The client certificate's private key. With `cert`. */
  key?: string | Buffer;
  /** The passphrase of an encrypted `key`. */
  passphrase?: string;
  /** The name the server's certificate must carry, when it is not the URL's host (an address, a tunnel). */
  servername?: string;
}

const TLS_FIELDS = new Set(['ca', 'cert', 'key', 'passphrase', 'servername']);
const TLS_FIELD_LIST = [...TLS_FIELDS].join(', ');

/** What is wrong with one PEM value, or undefined. */
function pemProblem(value: unknown, field: string): string | undefined {
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : undefined;
  if (text === undefined) return `${field} must be PEM text (a string or a Buffer), got ${describeValue(value)}`;
  if (!text.includes('-----BEGIN ')) {
    return `${field} must be PEM text (the file's contents: read it with readFileSync), got ${
      typeof value === 'string' && value.length <= 80 ? `'${value}'` : 'text with no -----BEGIN line'
    }`;
  }
  return undefined;
}

/**
 * The `tls` option's check (for `checkOptions`): an object of PEM texts and a
 * server name, no other field; `cert` and `key` both or neither.
 */
export function tlsOptionProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
    return `must be an object ({ ${TLS_FIELD_LIST} }), got ${describeValue(value)}`;
  }
  const given = value as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(given).filter((name) => !TLS_FIELDS.has(name));
  if (unknown.length > 0)
    problems.push(`has no field ${unknown.map((name) => `'${name}'`).join(', ')} (it takes ${TLS_FIELD_LIST})`);
  if (given.ca !== undefined) {
    const cas = Array.isArray(given.ca) ? given.ca : [given.ca];
    if (cas.length === 0) problems.push('ca must name at least one certificate');
    cas.forEach((ca, i) => {
      const problem = pemProblem(ca, Array.isArray(given.ca) ? `ca[${i}]` : 'ca');
      if (problem) problems.push(problem);
    });
  }
  for (const field of ['cert', 'key'] as const) {
    if (given[field] === undefined) continue;
    const problem = pemProblem(given[field], field);
    if (problem) problems.push(problem);
  }
  if ((given.cert === undefined) !== (given.key === undefined))
    problems.push('cert and key go together: give both or neither');
  if (given.passphrase !== undefined && typeof given.passphrase !== 'string') {
    problems.push(`passphrase must be a string, got ${describeValue(given.passphrase)}`);
  }
  if (given.passphrase !== undefined && given.key === undefined) problems.push('passphrase goes with key');
  if (given.servername !== undefined && (typeof given.servername !== 'string' || given.servername === '')) {
    problems.push(`servername must be a non-empty string, got ${describeValue(given.servername)}`);
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

/** Refuses TLS settings for a URL that does not ask for TLS (`redis://`). */
export function assertTlsUrl(url: string, tls: RedisTlsOptions | undefined, where: string): void {
  if (tls !== undefined && new URL(url).protocol !== 'rediss:') {
    throw new ValidationError({ path: where, message: `is set, but the url is not rediss://: '${redactUrl(url)}'` });
  }
}

/** Node's codes for a handshake that failed on the certificates or the protocol: settings to fix, not an outage. */
const TLS_REFUSAL = /CERT|^ERR_TLS_|^ERR_SSL_|^ERR_OSSL_|^UNABLE_TO_|^SELF_SIGNED|^DEPTH_ZERO/;

/**
 * Why a TLS handshake failed, from Node's error code, or undefined when
 * `error` is no handshake failure: `untrusted-server` (the server's
 * certificate does not chain to a trusted CA, or has expired), `wrong-host`
 * (it does not name the host), `client-certificate-required` (the server
 * verifies clients and got none), `client-certificate-refused` (the server
 * did not accept the one it got), `client-key` (the key cannot be used: a
 * wrong or missing passphrase, or not the certificate's key), `handshake`
 * (anything else: a protocol both ends do not share, settings OpenSSL cannot
 * read).
 */
export type RedisTlsFailure =
  | 'untrusted-server'
  | 'wrong-host'
  | 'client-certificate-required'
  | 'client-certificate-refused'
  | 'client-key'
  | 'handshake';

export function redisTlsFailure(error: unknown): RedisTlsFailure | undefined {
  const code = String((error as { code?: unknown } | undefined)?.code ?? '');
  if (!TLS_REFUSAL.test(code)) return undefined;
  if (/CERTIFICATE_REQUIRED/.test(code)) return 'client-certificate-required';
  if (/^ERR_OSSL_(BAD_DECRYPT|X509_KEY_VALUES_MISMATCH)$/.test(code)) return 'client-key';
  if (/^ERR_OSSL_/.test(code)) return 'handshake';
  // An alert is the server's answer: what it refused is ours (a decrypt error: the client certificate's signature).
  if (/ALERT/.test(code))
    return /CERT|UNKNOWN_CA|DECRYPT_ERROR/.test(code) ? 'client-certificate-refused' : 'handshake';
  if (/ALTNAME/.test(code)) return 'wrong-host';
  if (/CERT|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO/.test(code)) return 'untrusted-server';
  return 'handshake';
}

const TLS_HINTS: Record<RedisTlsFailure, string> = {
  'untrusted-server':
    "the server's certificate is not trusted: give the CA that signed it in tls.ca (or NODE_EXTRA_CA_CERTS)",
  'wrong-host': "the server's certificate does not name the host: connect by a name it carries, or give tls.servername",
  'client-certificate-required': 'the server requires a client certificate: give tls.cert and tls.key',
  'client-certificate-refused':
    'the server refused the client certificate (tls.cert): it must be signed by a CA the server trusts',
  'client-key': "the client key cannot be used: a wrong or missing tls.passphrase, or a tls.key that is not tls.cert's",
  handshake: 'check the TLS settings of both ends',
};

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
      `Redis at ${where}: the TLS handshake failed (${code}: ${text.trim()}); ${TLS_HINTS[failure]}`,
      { cause: error, retryable: false },
    );
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
      ...tlsSocket(settings.tls),
    },
  });
  client.on('error', (error: unknown) => {
    if (opened) settings.onError(error);
    else firstError ??= error;
  });
  redialOnReadOnly(client, url, settings.onError);
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

/** At most one reconnect a second per connection for `READONLY` replies. */
const REDIAL_EVERY_MS = 1000;

/**
 * A connection whose server answers `READONLY` (a replica now: a failover
 * demoted it) is dropped and made again, at most once a second: where the URL
 * names the primary by a name that follows failovers (a managed service's
 * primary endpoint, a DNS record), the new connection reaches the new
 * primary; where it names the old one, the replies stay `READONLY` and say
 * so. The server is asked to close the connection (`QUIT`, answered `OK`,
 * then closed: node-redis reconnects as after any drop, with its backoff,
 * resolving the host again); commands in flight on it fail, retryable.
 * The transport's and the inbox's commands go through `sendCommand`, but for
 * the readers' registration (a `MULTI`), whose lease renewals right after do.
 */
function redialOnReadOnly(client: RedisClient, url: string, onError: (error: unknown) => void): void {
  const send = client.sendCommand.bind(client);
  let last = Number.NEGATIVE_INFINITY;
  const redial = (reply: string) => {
    const now = Date.now();
    if (now - last < REDIAL_EVERY_MS || !client.isReady) return;
    last = now;
    onError(
      new TransportError(
        `Redis at ${redactUrl(url)} answered ${reply.split(' ')[0]} (a replica now, as after a failover): reconnecting, to reach the primary where the URL follows it`,
      ),
    );
    send(['QUIT']).catch(() => undefined);
  };
  client.sendCommand = ((...args: Parameters<typeof send>) =>
    send(...args).catch((error: unknown) => {
      if (error instanceof ErrorReply && /^READONLY\b/.test(error.message)) redial(error.message);
      throw error;
    })) as typeof client.sendCommand;
}

/** The socket options of `tls` (the URL's `rediss://` turns TLS on). */
function tlsSocket(tls: RedisTlsOptions | undefined): { tls?: true; ca?: (string | Buffer)[] | string | Buffer } {
  if (!tls) return {};
  const { ca, cert, key, passphrase, servername } = tls;
  return {
    tls: true,
    ...(ca !== undefined ? { ca: Array.isArray(ca) ? [...ca] : (ca as string | Buffer) } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(servername !== undefined ? { servername } : {}),
  };
}

/**
 * Which server a connection talks to: its `run_id` (`INFO`), the same for
 * every connection to one running server whatever URL reached it
 * (`localhost` or `127.0.0.1`, a hostname or an address); where `INFO` is
 * refused (a proxy, an ACL) or gives no answer within `timeoutMs`, the URL as
 * given. A server the transport and the inbox cannot work on is refused here,
 * at open, rather than by the first command (see `unusableRedisServer`).
 */
export async function serverIdentity(
  client: RedisCommandSender,
  url: string,
  timeoutMs = 5000,
  { allowEviction = false }: { allowEviction?: boolean } = {},
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  let info = '';
  try {
    info = String((await Promise.race([client.sendCommand(['INFO']), late])) ?? '');
  } catch {
    // Not allowed or not understood: the URL stands in, and the server is taken as it is.
  } finally {
    clearTimeout(timer);
  }
  const refusal = unusableRedisServer(info, url, { allowEviction });
  if (refusal) throw refusal;
  const runId = /^run_id:([0-9a-f]+)\s*$/m.exec(info)?.[1];
  return runId ? `run_id ${runId}` : `url ${url}`;
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

/**
 * How long closing waits for Redis to answer what was sent before dropping
 * the connection. A command already sent has no deadline of its own: a server
 * that stopped answering without closing the connection (its host gone, a
 * network dropping packets) would hold it until the operating system's TCP
 * timeout, many minutes.
 */
export const CLOSE_WAIT_MS = 5000;

/** Whether `promise` settled within `ms`. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

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
  // Dropped, the client rejects what waits in it and ends, which settles its close().
  const closing = client.close().catch(() => destroyClient(client));
  const inTime = await settledWithin(closing, waitMs);
  if (!inTime) destroyClient(client);
  await closing;
  return inTime;
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
