import { TransportError, ValidationError } from '@factline/core';
import {
  answerWithin,
  plainUrlToTlsPort,
  redactUrl,
  settledWithin,
  type TlsOptions,
  tlsConnectOptions,
  tlsFailure,
  tlsHint,
} from '@factline/core/adapter';
import amqp, { type Channel, type ChannelModel } from 'amqplib';

/** The URL without its secrets, for messages and logs (`@factline/core/adapter`'s). */
export { redactUrl };

/** Refuses a URL amqplib could not use, before any connection is tried; `where` names the factory in the error. */
export function assertAmqpUrl(url: string, where = 'getRabbitTransport'): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError({ path: `${where}.url`, message: `is not a URL: '${redactUrl(url)}'` });
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new ValidationError({
      path: `${where}.url`,
      message: `must start with amqp:// or amqps://, got '${parsed.protocol}//'`,
    });
  }
  if (parsed.hostname === '') {
    throw new ValidationError({ path: `${where}.url`, message: `names no host: '${redactUrl(url)}'` });
  }
}

/** Refuses TLS settings for a URL that does not ask for TLS (`amqp://`); `where` names the option in the error. */
export function assertTlsUrl(url: string, tls: TlsOptions | undefined, where: string): void {
  if (tls !== undefined && new URL(url).protocol !== 'amqps:') {
    throw new ValidationError({ path: where, message: `is set, but the url is not amqps://: '${redactUrl(url)}'` });
  }
}

/**
 * A connection failure as a `TransportError`: refused credentials or virtual
 * host and a failed TLS handshake (an untrusted or wrong certificate, a
 * client certificate the broker requires or refuses, a key that cannot be
 * used) are not retryable, an outage is. amqplib rejects with Node's own
 * TLS error, its `code` intact, both for a failure during the handshake and
 * for the broker's alert after it (TLS 1.3 sends a refused client
 * certificate's alert once the client has finished).
 */
export function connectionError(error: unknown, url: string): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const where = redactUrl(url);
  // First: OpenSSL's texts carry hex numbers that could read as a reply code below.
  const failure = tlsFailure(error);
  if (failure) {
    const code = (error as { code: string }).code;
    const hint = code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? NOT_TLS_HINT : tlsHint(failure);
    return new TransportError(`RabbitMQ at ${where}: the TLS handshake failed (${code}: ${text.trim()}); ${hint}`, {
      cause: error,
      retryable: false,
    });
  }
  if (/ACCESS[-_]REFUSED|\b403\b/.test(text)) {
    return new TransportError(`RabbitMQ at ${where} refused the credentials: ${text}`, {
      cause: error,
      retryable: false,
    });
  }
  if (/NOT_ALLOWED|\b530\b/.test(text)) {
    return new TransportError(`RabbitMQ at ${where} refused access to the virtual host: ${text}`, {
      cause: error,
      retryable: false,
    });
  }
  return new TransportError(`RabbitMQ at ${where} is unreachable: ${text}`, { cause: error });
}

/** What an `amqps://` URL that reached a listener without TLS gets back (its first bytes are no TLS record). */
const NOT_TLS_HINT =
  "the server did not answer in TLS: amqps:// needs the broker's TLS listener (5671 by default; 5672 is plain AMQP)";

/**
 * Opens one AMQP connection, failing with a typed error within `timeoutMs`;
 * with `tls` (an `amqps://` URL) the handshake uses its CA, client
 * certificate and server name.
 */
export async function openConnection(
  url: string,
  timeoutMs: number,
  name: string,
  tls?: TlsOptions,
): Promise<ChannelModel> {
  const attempt = amqp.connect(url, {
    timeout: timeoutMs,
    clientProperties: { connection_name: name },
    ...(tls ? tlsConnectOptions(tls) : {}),
  });
  try {
    const connection = await answerWithin(attempt, timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
    // A connection's own errors arrive with its close; without a listener Node would throw them.
    connection.on('error', () => undefined);
    return connection;
  } catch (error) {
    // A late success after the timeout must not leak a connection.
    attempt.then((late) => late.close().catch(() => undefined)).catch(() => undefined);
    const settings = {
      server: 'RabbitMQ',
      scheme: 'amqp',
      defaultPort: 5672,
      waitMs: timeoutMs,
    };
    throw (await plainUrlToTlsPort(url, error, settings)) ?? connectionError(error, url);
  }
}

/** Backoff before reconnect attempt `n` (1-based): doubling from `min` to `max`, with up to 25% jitter. */
export function reconnectDelay(attempt: number, min: number, max: number, random = Math.random): number {
  const base = Math.min(max, min * 2 ** Math.min(attempt - 1, 20));
  return Math.round(base * (0.75 + random() * 0.25));
}

/**
 * How long a close waits for the broker's close-ok. amqplib's `close()`
 * settles only on it: a connection that ends first, or a broker that stopped
 * answering without closing it, would leave it pending for ever.
 */
export const CLOSE_WAIT_MS = 5000;

/**
 * Closes an amqplib channel or connection: resolves true once the broker
 * confirmed or the connection ended (its 'close' event), false when neither
 * came within `waitMs`. A connection past the deadline is dropped (its socket
 * destroyed, which ends its channels too); a channel is left to its
 * connection. Never rejects (closing what is already closed counts as done).
 */
export async function closeWithin(closable: Channel | ChannelModel, waitMs = CLOSE_WAIT_MS): Promise<boolean> {
  let onClose: (() => void) | undefined;
  const ended = new Promise<void>((resolve) => {
    onClose = resolve;
    closable.once('close', resolve);
  });
  let closing: Promise<unknown>;
  try {
    closing = closable.close();
  } catch (error) {
    closing = Promise.reject(error);
  }
  closing.catch(() => undefined);
  const inTime = await settledWithin(Promise.race([closing, ended]), waitMs);
  closable.removeListener('close', onClose as () => void);
  if (!inTime && 'createChannel' in closable) dropConnection(closable, waitMs);
  return inTime;
}

/** Ends a connection at once, without a word to the broker: amqplib sees a socket error and closes everything. */
function dropConnection(model: ChannelModel, waitMs: number): void {
  const stream = (model.connection as unknown as { stream?: { destroy(error?: Error): void } }).stream;
  stream?.destroy(new Error(`no close-ok from RabbitMQ within ${waitMs} ms: connection dropped`));
}
