import { createConnection, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { TransportError, ValidationError } from '@factline/core';
import {
  redactUrl,
  type TlsFailure,
  type TlsOptions,
  tlsConnectOptions,
  tlsFailure,
  tlsHint,
} from '@factline/core/adapter';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import {
  type TlsOptions as ClientTlsOptions,
  type ConnectionOptions,
  connect,
  type NatsConnection,
} from '@nats-io/transport-node';

/**
 * The TLS settings of a `tls://` connection (`TlsOptions` of
 * `@factline/core/adapter`): the CA that signs the servers' certificates, a
 * client certificate and key for a server that verifies clients, the key's
 * passphrase, the name the certificates must carry.
 */
export type NatsTlsOptions = TlsOptions;

/** The URL without its secrets (passwords, and tokens: `nats://<token>@host`), for messages and logs (`@factline/core/adapter`'s). */
export { redactUrl };

interface Server {
  server: string;
  user?: string;
  pass?: string;
}

/**
 * Refuses a URL the client could not use, before any connection is tried; splits credentials off.
 * The servers are all `nats://` or all `tls://`: the client takes one TLS setting for every server.
 * `option` is the path a `ValidationError` names.
 *
 * @example
 * parseNatsUrl('nats://app:secret@n1:4222,nats://n2:4222'); // [{ server: 'nats://n1:4222', user: 'app', pass: 'secret' }, { server: 'nats://n2:4222' }]
 */
export function parseNatsUrl(url: string, option = 'getNatsTransport.url'): Server[] {
  const servers: Server[] = [];
  for (const part of url.split(',')) {
    let parsed: URL;
    try {
      parsed = new URL(part.trim());
    } catch {
      throw new ValidationError({ path: option, message: `is not a URL: '${redactUrl(url)}'` });
    }
    if (!['nats:', 'tls:'].includes(parsed.protocol)) {
      throw new ValidationError({
        path: option,
        message: `must start with nats:// or tls://, got '${parsed.protocol}//'`,
      });
    }
    if (parsed.hostname === '') {
      throw new ValidationError({ path: option, message: `names no host: '${redactUrl(url)}'` });
    }
    const server: Server = { server: `${parsed.protocol}//${parsed.host}` };
    if (parsed.username) server.user = decodeURIComponent(parsed.username);
    if (parsed.password) server.pass = decodeURIComponent(parsed.password);
    servers.push(server);
  }
  if (servers.some(isTls) && !servers.every(isTls)) {
    throw new ValidationError({
      path: option,
      message: `mixes nats:// and tls:// servers: the client uses TLS with every server of the URL or with none, got '${redactUrl(url)}'`,
    });
  }
  return servers;
}

const isTls = (server: Server) => server.server.startsWith('tls:');

/**
 * Why a connection's TLS handshake failed, and Node's error that tells it,
 * found on `error` or its causes (the client wraps some in a
 * `ConnectionError`), or undefined. nats-server answers a client that sends
 * no certificate where one is required with the alert it sends for one it
 * refuses (`bad_certificate`, Go's TLS): without `tls.cert` that is a
 * certificate required.
 */
function natsTlsFailure(
  error: unknown,
  tls?: NatsTlsOptions,
): { failure: TlsFailure; error: Error & { code: string } } | undefined {
  let current = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    const failure = tlsFailure(current);
    if (failure) {
      const required = failure === 'client-certificate-refused' && tls?.cert === undefined;
      return {
        failure: required ? 'client-certificate-required' : failure,
        error: current as Error & { code: string },
      };
    }
    current = current.cause;
  }
  return undefined;
}

/**
 * A connection failure as a `TransportError`: refused credentials, a failed
 * TLS handshake (an untrusted or wrong certificate, a client certificate the
 * server requires or refuses, a key that cannot be used; its `cause` is
 * Node's TLS error) and a server without TLS for a `tls://` URL are not
 * retryable, an outage is.
 */
export function connectionError(error: unknown, url: string, tls?: NatsTlsOptions): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  const where = redactUrl(url);
  const handshake = natsTlsFailure(error, tls);
  if (handshake) {
    const { code, message } = handshake.error;
    return new TransportError(
      `NATS at ${where}: the TLS handshake failed (${code}: ${message.trim()}); ${tlsHint(handshake.failure)}`,
      { cause: handshake.error, retryable: false },
    );
  }
  if (/server does not support 'tls'/.test(text)) {
    return new TransportError(
      `NATS at ${where} does not offer TLS, which a tls:// URL requires: configure TLS on the server (a tls block, or --tls), or give a nats:// URL for a server without it`,
      { cause: error, retryable: false },
    );
  }
  if (name === 'AuthorizationError' || /authorization|authentication/i.test(text)) {
    return new TransportError(`NATS at ${where} refused the credentials: ${text}`, { cause: error, retryable: false });
  }
  return new TransportError(`NATS at ${where} is unreachable: ${text}`, { cause: error });
}

/** The error for a server that answers but has JetStream off (started without `-js`). */
export function jetStreamDisabled(url: string, error?: unknown): TransportError {
  return new TransportError(
    `NATS at ${redactUrl(url)} has JetStream disabled: start nats-server with -js (or jetstream {} in its configuration)`,
    { cause: error, retryable: false },
  );
}

/**
 * The client's `tls` setting for a `tls://` URL: an object, so the client
 * refuses a server that offers no TLS. The client hands its fields to Node's
 * `tls.connect` as they are (`passphrase`, `servername`, Buffers and lists
 * of CAs included), though its type names only PEM strings and file paths.
 */
const clientTls = (tls: NatsTlsOptions | undefined) => tlsConnectOptions(tls ?? {}) as ClientTlsOptions;

/**
 * The alert a server sends once the client finished its side of the TLS
 * handshake (TLS 1.3: a client certificate it requires or does not accept):
 * the client takes it for a connection closed before the server's first
 * answer and dials again until its timeout, rejecting with a `TimeoutError`
 * that tells nothing. This asks each server once more, itself: it reads the
 * INFO line, upgrades to TLS with the same settings and sends nothing, so
 * that what comes back is the alert (a write after it could meet the
 * connection reset instead). Node's error for the first server that refuses
 * the handshake, or undefined once every server accepted it or failed
 * otherwise, or `ms` passed.
 */
function handshakeRefusal(servers: Server[], tls: NatsTlsOptions | undefined, ms: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const sockets: Socket[] = [];
    let waiting = servers.length;
    const finish = (error: Error | undefined) => {
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      resolve(error);
    };
    const settle = (error?: Error) => {
      if (error && natsTlsFailure(error, tls)) finish(error);
      else if (--waiting === 0) finish(undefined);
    };
    const timer = setTimeout(() => finish(undefined), ms);
    for (const server of servers) {
      const address = new URL(server.server);
      const host = address.hostname.replace(/^\[(.*)\]$/, '$1');
      const plain = createConnection({ host, port: Number(address.port || 4222) });
      sockets.push(plain);
      let info = '';
      let told = false;
      const tell = (error?: Error) => {
        if (told) return;
        told = true;
        settle(error);
      };
      plain.on('error', tell);
      plain.on('close', () => tell());
      plain.on('data', (chunk: Buffer) => {
        info += chunk.toString('latin1');
        if (!info.includes('\r\n')) return;
        plain.removeAllListeners();
        // What fails from here is the TLS socket's to tell.
        plain.on('error', () => undefined);
        const secured = tlsConnect({
          socket: plain,
          host,
          ...(isIP(host) ? {} : { servername: host }),
          ...tlsConnectOptions(tls ?? {}),
        });
        sockets.push(secured);
        secured.on('error', tell);
        secured.on('close', () => tell());
        // The server waits for CONNECT; anything it sends unasked (its authentication timeout) ends the wait.
        secured.on('data', () => tell());
      });
    }
  });
}

/**
 * Opens one connection that reconnects by itself for ever (with `reconnectWaitMs`
 * between attempts, jittered), failing at start with a typed error within `timeoutMs`
 * (a handshake the server refuses after the client's side of it: within `timeoutMs`
 * and at most 2 s more). A `tls://` URL requires TLS of every server, with `tls`'s
 * CA, client certificate and server name. A bad URL, or `tls` with a URL that is not
 * `tls://`, is a `ValidationError` naming `caller`'s option (`getNatsTransport.url`).
 */
export async function openConnection(
  url: string,
  settings: {
    timeoutMs: number;
    reconnectWaitMs: number;
    name: string;
    tls?: NatsTlsOptions | undefined;
    caller?: 'getNatsTransport' | 'getNatsRedriver';
  },
): Promise<NatsConnection> {
  const caller = settings.caller ?? 'getNatsTransport';
  const servers = parseNatsUrl(url, `${caller}.url`);
  const first = servers[0] as Server;
  const secure = isTls(first);
  if (settings.tls !== undefined && !secure) {
    throw new ValidationError({
      path: `${caller}.tls`,
      message: `is set, but the url is not tls://: '${redactUrl(url)}'`,
    });
  }
  const options: ConnectionOptions = {
    servers: servers.map((s) => s.server),
    ...(first.user !== undefined && first.pass === undefined ? { token: first.user } : {}),
    ...(first.pass !== undefined ? { user: first.user ?? '', pass: first.pass } : {}),
    ...(secure ? { tls: clientTls(settings.tls) } : {}),
    timeout: settings.timeoutMs,
    name: settings.name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: settings.reconnectWaitMs,
    reconnectJitter: 100,
    // With a tls setting the client adds this jitter instead (its default: up to 1 s).
    reconnectJitterTLS: 100,
    waitOnFirstConnect: false,
    pingInterval: 10_000,
  };
  try {
    return await connect(options);
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError';
    const refusal =
      timedOut && secure
        ? await handshakeRefusal(servers, settings.tls, Math.min(settings.timeoutMs, 2000))
        : undefined;
    throw connectionError(refusal ?? error, url, settings.tls);
  }
}

/** Opens the JetStream manager, telling a server without JetStream apart from other failures. */
export async function openManager(nc: NatsConnection, url: string): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc);
  } catch (error) {
    const text = String((error as Error)?.message ?? error);
    if (/not enabled|no responders|503/i.test(text)) throw jetStreamDisabled(url, error);
    throw new TransportError(`NATS at ${redactUrl(url)} did not answer the JetStream API: ${text}`, { cause: error });
  }
}
