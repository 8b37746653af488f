import type { DeadLetterStore } from '@factline/core';
import { checkOptions, type OptionSpecOf, type TlsOptions, tlsOptionProblem } from '@factline/core/adapter';

/**
 * The TLS settings of an `amqps://` connection (`TlsOptions` of
 * `@factline/core/adapter`), as PEM text: `ca`, `cert` and `key` (for a
 * broker with `ssl_options.fail_if_no_peer_cert = true`), `passphrase`,
 * `servername`.
 */
export type RabbitTlsOptions = TlsOptions;

/** Where a transport failure happened, as told to `onError`. */
export type RabbitErrorStage = 'connection' | 'reconnect' | 'consume' | 'dead-letters' | 'delay';

export interface RabbitTransportOptions {
  /** `amqp://user:password@host:port/vhost` (or `amqps://`). */
  url: string;
  /**
   * For an `amqps://` URL: the CA that signs the broker's certificate, and the
   * client certificate and key for a broker that verifies clients, as PEM
   * text. Default: Node's trusted CAs (and `NODE_EXTRA_CA_CERTS`), no client
   * certificate.
   */
  tls?: RabbitTlsOptions;
  /**
   * Names everything the transport declares: the topic exchange `<application>`,
   * queues `<application>.<topic>.<group>.<partition>`, dead-letter and delay
   * queues. Several services of one application share it. Letters, digits,
   * `-`, `_`, `.`; at most 64 characters.
   */
  application: string;
  /**
   * Queues per (topic, group), each with one active consumer across every
   * process: a key always goes to the same partition, so its messages are
   * handled in publish order; different partitions run in parallel. Must be
   * the same for every process of an application: the first declaration or
   * publish of a topic records its count (the queue
   * `<application>.<topic>.partitions`) and another count is refused. Default 4.
   */
  partitions?: number;
  /** Unacknowledged messages per partition queue a process may hold (AMQP prefetch). Default 64. */
  prefetch?: number;
  /**
   * Broker-side delivery limit of each group queue (`x-delivery-limit`): a
   * message handed out more often (its consumer process died or its channel
   * closed each time) goes to the group's dead-letter queue. Default 20.
   */
  deliveryLimit?: number;
  /**
   * Where the messages the broker dead-letters (past `deliveryLimit`) go, and
   * the store consumers use when given none (`defaultDeadLetterStore`): an
   * SQL dead-letter store from @factline/sqlite or @factline/postgres. Without
   * it, consumers must be given one and broker dead letters stay in the
   * group's `.dead` queue.
   */
  deadLetters?: DeadLetterStore;
  /** First reconnect delay; doubles (with jitter) up to `reconnectMaxMs`. At most 2147483647. Default 100 ms. */
  reconnectMinMs?: number;
  /** Longest reconnect delay, at most 2147483647. Default 5000 ms. */
  reconnectMaxMs?: number;
  /** How long `getRabbitTransport` and each reconnect attempt wait for the broker, at most 2147483647. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * How long a publish waits for the broker's confirms (and for room to send)
   * before it rejects with a retryable `TransportError`: a broker under a
   * memory or disk alarm blocks publishers until the alarm clears. At most
   * 2147483647 (a timer's limit). Default 30000 ms.
   */
  publishTimeoutMs?: number;
  /** Told every failure the transport handles itself (lost connection, cancelled consumer). */
  onError?: (error: unknown, context: { stage: RabbitErrorStage }) => void;
  /** Shown in the broker's connection list (`rabbitmqctl list_connections client_properties`). */
  connectionName?: string;
}

/** The `application` option's check: every name the application declares on the broker starts with it. */
export const applicationOption = (value: unknown): string | undefined =>
  typeof value === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(value)
    ? undefined
    : 'must be 1 to 64 letters, digits, "-", "_" or "."';

const spec: OptionSpecOf<RabbitTransportOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationOption,
  partitions: 'positive-integer',
  prefetch: 'positive-integer',
  deliveryLimit: 'positive-integer',
  deadLetters: 'object',
  // Timers' delays (a reconnect's wait, the connect and confirm deadlines): Node fires one above MAX_TIMER_MS after 1 ms.
  reconnectMinMs: 'timer-ms',
  reconnectMaxMs: 'timer-ms',
  connectTimeoutMs: 'timer-ms',
  publishTimeoutMs: 'timer-ms',
  onError: 'function',
  connectionName: 'non-empty-string',
};

/** The options with their defaults; a `ValidationError` names every unknown or bad option. */
export function checkRabbitTransportOptions(given: RabbitTransportOptions) {
  const options = checkOptions(given, spec, 'getRabbitTransport', {
    required: ['url', 'application'],
    optional: false,
  });
  return {
    ...options,
    partitions: options.partitions ?? 4,
    prefetch: options.prefetch ?? 64,
    deliveryLimit: options.deliveryLimit ?? 20,
    reconnectMinMs: options.reconnectMinMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
  };
}

export type CheckedRabbitOptions = ReturnType<typeof checkRabbitTransportOptions>;
