import { TransportError, ValidationError } from '@factline/core';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/**
 * The URL without its password, for messages and logs.
 *
 * @example
 * redactUrl('nats://app:secret@127.0.0.1:4222'); // 'nats://app:***@127.0.0.1:4222'
 */
export const redactUrl = (url: string) => url.replace(/\/\/([^:/@]*):[^@/]*@/g, '//$1:***@');

interface Server {
  server: string;
  user?: string;
  pass?: string;
}

/**
 * Refuses a URL the client could not use, before any connection is tried; splits credentials off.
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
  return servers;
}

/** A connection failure as a `TransportError`: refused credentials are not retryable, an outage is. */
export function connectionError(error: unknown, url: string): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  const where = redactUrl(url);
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
 * Opens one connection that reconnects by itself for ever (with `reconnectWaitMs`
 * between attempts, jittered), failing at start with a typed error within `timeoutMs`.
 * A bad URL is a `ValidationError` naming `urlOption` (default `getNatsTransport.url`).
 */
export async function openConnection(
  url: string,
  settings: { timeoutMs: number; reconnectWaitMs: number; name: string; urlOption?: string },
): Promise<NatsConnection> {
  const servers = parseNatsUrl(url, settings.urlOption);
  const first = servers[0] as Server;
  try {
    return await connect({
      servers: servers.map((s) => s.server),
      ...(first.user !== undefined && first.pass === undefined ? { token: first.user } : {}),
      ...(first.pass !== undefined ? { user: first.user ?? '', pass: first.pass } : {}),
      timeout: settings.timeoutMs,
      name: settings.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: settings.reconnectWaitMs,
      reconnectJitter: 100,
      waitOnFirstConnect: false,
      pingInterval: 10_000,
    });
  } catch (error) {
    throw connectionError(error, url);
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
