import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ChannelListener } from '../channel-listener.ts';

/**
 * The NOTIFY channel publishes of a schema's transport are signalled on:
 * `factline_transport_<schema>`, or a hash of the schema name when that would
 * pass PostgreSQL's 63-byte identifier limit. The payload is the topic.
 */
export function transportChannel(schema: string): string {
  const channel = `factline_transport_${schema}`;
  if (channel.length <= 63) return channel;
  return `factline_transport_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

/** Notification payloads stop at 8000 bytes: a longer topic wakes every receiver instead. */
export const notifyPayload = (topic: string): string => (Buffer.byteLength(topic) < 7000 ? topic : '');

export interface TransportListenerOptions {
  /** The transport's connection string, if it was given one. */
  connectionString?: string;
  /** Settings of the LISTEN connection; default: the connection string, or the pool's settings. */
  listenConnection?: pg.ClientConfig;
  /** The transport's pool, whose settings the LISTEN connection takes when given nothing else. */
  pool: pg.Pool;
  channel: string;
  /** Told the first failure of each run of failed connects or LISTENs. */
  onError?: (error: unknown) => void;
}

/**
 * The transport's one dedicated LISTEN connection on its channel, opened by
 * the first receive that waits. It hears other processes' publishes and
 * releases; the payload is the topic, `undefined` when anything may have been
 * published meanwhile (after a reconnect).
 */
export function createTransportListener(options: TransportListenerOptions): ChannelListener {
  const base: pg.ClientConfig =
    options.listenConnection ??
    (options.connectionString !== undefined
      ? { connectionString: options.connectionString }
      : { ...(options.pool.options as pg.ClientConfig) });
  return new ChannelListener({
    connection: {
      connectionTimeoutMillis: 10_000,
      ...base,
      application_name: 'factline-transport-listen',
      keepAlive: true,
    },
    channel: options.channel,
    reconnectInitialMs: 100,
    reconnectMaxMs: 30_000,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}
