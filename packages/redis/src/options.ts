import { checkOptions, type OptionSpecOf, tlsOptionProblem } from '@factline/core/adapter';
import type { RedisTlsOptions } from './tls.ts';

/** Where a transport failure happened, as told to `onError`. */
export type RedisErrorStage = 'connection' | 'consume' | 'lease' | 'delay' | 'trim';

export interface RedisTransportOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). */
  url: string;
  /**
   * For a `rediss://` URL: the CA that signs the server's certificate, and
   * the client certificate and key for a server that verifies clients, as
   * PEM text. Default: Node's trusted CAs (and `NODE_EXTRA_CA_CERTS`), no
   * client certificate.
   */
  tls?: RedisTlsOptions;
  /**
   * Prefixes every key the transport writes (`<application>:stream:<topic>:<p>`
   * and the others listed in docs/redis.md). Several services of one
   * application share it. Letters, digits, `-`, `_`, `.`; at most 64 characters.
   */
  application: string;
  /**
   * Streams per topic, each read by one process of a group at a time (a lease):
   * a key always goes to the same partition, so its messages are handled in
   * publish order; partitions run in parallel. The same for every process of an
   * application. Default 4.
   */
  partitions?: number;
  /** Entries a process holds for one group, read but not yet acknowledged. Default 256. */
  prefetch?: number;
  /**
   * How long a partition lease lasts without renewal (its holder renews it
   * every third of it); a process that died hands its partitions on after it.
   * At most 2147483647 (a timer's limit). Default 5000 ms.
   */
  leaseMs?: number;
  /** Longest wait of one blocking `XREADGROUP`, at most 2147483647. Default 1000 ms. */
  blockMs?: number;
  /**
   * How often a reader trims the streams of the partitions it holds to what
   * the slowest group of each has not yet read (acknowledged entries stay in a
   * stream until trimmed). Default 5000 ms.
   */
  trimIntervalMs?: number;
  /** A consumer name idle this long with nothing pending is removed from its group at a trim. Default 60 000 ms. */
  consumerIdleMs?: number;
  /** First reconnect delay; doubles (with jitter) up to `reconnectMaxMs`. At most 2147483647. Default 100 ms. */
  reconnectMinMs?: number;
  /** Longest reconnect delay, at most 2147483647. Default 5000 ms. */
  reconnectMaxMs?: number;
  /** How long `getRedisTransport` waits for the server, at most 2147483647. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * Opens on a server that evicts keys when full (a `maxmemory` with a
   * `maxmemory-policy` other than `noeviction`), which could drop streams,
   * leases and inbox marks. Default false: such a server is refused at open.
   */
  allowEviction?: boolean;
  /** Told every failure the transport handles itself (lost connection, lost lease, failed move of delayed messages). */
  onError?: (error: unknown, context: { stage: RedisErrorStage }) => void;
}

/** What is wrong with `value` as an `application` option (the prefix of every key), or undefined. */
export const applicationName = (value: unknown) =>
  typeof value === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(value)
    ? undefined
    : 'must be 1 to 64 letters, digits, "-", "_" or "."';

const spec: OptionSpecOf<RedisTransportOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationName,
  partitions: 'positive-integer',
  prefetch: 'positive-integer',
  // Timers' delays (a lease's renewal and silence watch, a reader's pause, a reconnect's wait, the connect
  // deadline): at most MAX_TIMER_MS, as Node fires a longer timer after 1 ms. A trim's interval and a consumer's
  // idle time are compared, never waited on.
  leaseMs: 'timer-ms',
  blockMs: 'timer-ms',
  trimIntervalMs: 'positive-integer',
  consumerIdleMs: 'positive-integer',
  reconnectMinMs: 'timer-ms',
  reconnectMaxMs: 'timer-ms',
  connectTimeoutMs: 'timer-ms',
  allowEviction: 'boolean',
  onError: 'function',
};

/** The options with their defaults; a `ValidationError` names every unknown or bad option. */
export function checkRedisTransportOptions(given: RedisTransportOptions) {
  const options = checkOptions(given, spec, 'getRedisTransport', {
    required: ['url', 'application'],
    optional: false,
  });
  return {
    ...options,
    partitions: options.partitions ?? 4,
    prefetch: options.prefetch ?? 256,
    leaseMs: options.leaseMs ?? 5000,
    blockMs: options.blockMs ?? 1000,
    trimIntervalMs: options.trimIntervalMs ?? 5000,
    consumerIdleMs: options.consumerIdleMs ?? 60_000,
    reconnectMinMs: options.reconnectMinMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
  };
}

export type CheckedRedisOptions = ReturnType<typeof checkRedisTransportOptions>;
