import { TransportError, ValidationError } from '@factline/core';
import { answerWithin } from '@factline/core/adapter';
import amqp, { type ChannelModel } from 'amqplib';

/** The URL without its password, for messages and logs. */
export const redactUrl = (url: string) => url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');

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

/** A connection failure as a `TransportError`: refused credentials are not retryable, an outage is. */
export function connectionError(error: unknown, url: string): TransportError {
  const text = error instanceof Error ? error.message : String(error);
  const where = redactUrl(url);
  if (/ACCESS[-_]REFUSED|403/.test(text)) {
    return new TransportError(`RabbitMQ at ${where} refused the credentials: ${text}`, {
      cause: error,
      retryable: false,
    });
  }
  if (/NOT_ALLOWED|530/.test(text)) {
    return new TransportError(`RabbitMQ at ${where} refused access to the virtual host: ${text}`, {
      cause: error,
      retryable: false,
    });
  }
  return new TransportError(`RabbitMQ at ${where} is unreachable: ${text}`, { cause: error });
}

/** Opens one AMQP connection, failing with a typed error within `timeoutMs`. */
export async function openConnection(url: string, timeoutMs: number, name: string): Promise<ChannelModel> {
  const attempt = amqp.connect(url, { timeout: timeoutMs, clientProperties: { connection_name: name } });
  try {
    const connection = await answerWithin(attempt, timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
    // A connection's own errors arrive with its close; without a listener Node would throw them.
    connection.on('error', () => undefined);
    return connection;
  } catch (error) {
    // A late success after the timeout must not leak a connection.
    attempt.then((late) => late.close().catch(() => undefined)).catch(() => undefined);
    throw connectionError(error, url);
  }
}

/** Backoff before reconnect attempt `n` (1-based): doubling from `min` to `max`, with up to 25% jitter. */
export function reconnectDelay(attempt: number, min: number, max: number, random = Math.random): number {
  const base = Math.min(max, min * 2 ** Math.min(attempt - 1, 20));
  return Math.round(base * (0.75 + random() * 0.25));
}
